//! The syslog sink against a real rsyslogd (TCP with octet counting, TLS, UDP), comparing what
//! rsyslog wrote with what was sent; and the resend-after-reconnect behaviour on plain TCP.

use crate::support::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio::io::AsyncReadExt;

fn find(program: &str, dirs: &[&str]) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(dirs.iter().copied())
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

fn openssl(dir: &Path, args: &[&str]) {
    let ok = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl")
        .success();
    assert!(ok, "openssl {args:?} failed");
}

/// A test CA and a server certificate for 127.0.0.1 / localhost.
fn make_certs(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=wdc-test-ca",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(dir.join("ext.cnf"), "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n").expect("write");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
}

struct Rsyslog(std::process::Child);

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One received RFC 5424 message: (PRI, APP-NAME, SD, MSG).
fn parse_5424(line: &str) -> (u32, String, String, String) {
    let mut parts = line.splitn(7, ' ');
    let pri_ver = parts.next().expect("pri");
    let pri: u32 = pri_ver
        .trim_start_matches('<')
        .split('>')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("pri number");
    assert!(pri_ver.ends_with(">1"), "not RFC 5424: {line}");
    let _ts = parts.next();
    let _host = parts.next();
    let app = parts.next().expect("app").to_string();
    let _procid = parts.next();
    let msgid = parts.next().expect("msgid");
    assert_eq!(msgid, "activity");
    let rest = parts.next().expect("rest");
    let (sd, msg) = rest.split_once("] ").expect("structured data");
    (pri, app, format!("{sd}]"), msg.to_string())
}

/// Event ids and entries the file sink holds (the ground truth delivered).
fn file_ids(env: &Env) -> HashMap<String, String> {
    std::fs::read_to_string(env.path("events.jsonl"))
        .expect("file sink")
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json");
            (
                v["id"].as_str().expect("id").to_string(),
                v["event"].to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsyslog_receives_tcp_tls_and_udp_exactly_as_sent() {
    let Some(rsyslogd) = find("rsyslogd", &["/usr/sbin", "/sbin"]) else {
        eprintln!("SKIPPED rsyslog_receives_tcp_tls_and_udp_exactly_as_sent: rsyslogd not found (install rsyslog rsyslog-openssl; .ci/run does)");
        return;
    };
    let ossl = [
        "/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_ossl.so",
        "/usr/lib/aarch64-linux-gnu/rsyslog/lmnsd_ossl.so",
        "/usr/lib/rsyslog/lmnsd_ossl.so",
    ];
    if find("openssl", &["/usr/bin"]).is_none() || !ossl.iter().any(|p| Path::new(p).exists()) {
        eprintln!("SKIPPED rsyslog_receives_tcp_tls_and_udp_exactly_as_sent: openssl or rsyslog-openssl missing (.ci/run installs them)");
        return;
    }
    let env = Env::frozen(121, 3_000, 0, |_| {}).await;
    let rs = env.path("rsyslog");
    std::fs::create_dir_all(&rs).expect("mkdir");
    make_certs(&rs);
    let (tcp, tls, udp) = (free_tcp_port(), free_tcp_port(), free_udp_port());
    let received = rs.join("received.log");
    let d = rs.display();
    std::fs::write(
        rs.join("rsyslog.conf"),
        format!(
            r#"global(workDirectory="{d}" defaultNetstreamDriverCAFile="{d}/ca.pem" defaultNetstreamDriverCertFile="{d}/cert.pem" defaultNetstreamDriverKeyFile="{d}/key.pem" maxMessageSize="64k")
module(load="imtcp" maxSessions="100")
module(load="imudp")
template(name="raw" type="string" string="%rawmsg%\n")
ruleset(name="out") {{ action(type="omfile" file="{r}" template="raw") }}
input(type="imtcp" port="{tcp}" address="127.0.0.1" ruleset="out")
input(type="imtcp" port="{tls}" address="127.0.0.1" ruleset="out" streamDriver.name="ossl" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imudp" port="{udp}" address="127.0.0.1" ruleset="out")
"#,
            r = received.display()
        ),
    )
    .expect("write conf");
    let _rsyslog = Rsyslog(
        Command::new(rsyslogd)
            .args(["-n", "-f"])
            .arg(rs.join("rsyslog.conf"))
            .arg("-i")
            .arg(rs.join("rsyslog.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rsyslogd"),
    );
    wait_until("rsyslogd to listen", Duration::from_secs(15), || {
        std::net::TcpStream::connect(("127.0.0.1", tcp)).is_ok()
            && std::net::TcpStream::connect(("127.0.0.1", tls)).is_ok()
    })
    .await;

    env.append_config(&format!(
            "[[sink]]\nname = \"sl-tcp\"\ntype = \"syslog\"\ntransport = \"tcp\"\naddress = \"127.0.0.1:{tcp}\"\nformat = \"ocsf\"\napp_name = \"wdc-tcp\"\nbatch_size = 250\n\
             \n[[sink]]\nname = \"sl-tls\"\ntype = \"syslog\"\ntransport = \"tls\"\naddress = \"127.0.0.1:{tls}\"\nmessage = \"cef\"\nca_file = \"rsyslog/ca.pem\"\napp_name = \"wdc-tls\"\nfacility = \"auth\"\n\
             \n[[sink]]\nname = \"sl-udp\"\ntype = \"syslog\"\ntransport = \"udp\"\naddress = \"127.0.0.1:{udp}\"\napp_name = \"wdc-udp\"\ninclude_system_accounts = [\"lmcneil\"]\nbatch_size = 20\n"
        ));
    env.run_once().await.expect("run --once");
    let truth = file_ids(&env);
    let lmcneil = truth
        .values()
        .filter(|e| e.contains("\"systemAccount\":\"lmcneil\""))
        .count();
    let count = |app: &str| {
        std::fs::read_to_string(&received)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.split(' ').nth(3) == Some(app))
            .count()
    };
    wait_until(
        "rsyslog to write every TCP and TLS message",
        Duration::from_secs(30),
        || count("wdc-tcp") >= truth.len() && count("wdc-tls") >= truth.len(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let text = std::fs::read_to_string(&received).expect("received");
    let mut tcp_entries = Vec::new();
    let mut tls_ids = Vec::new();
    let mut udp_entries = Vec::new();
    for line in text.lines() {
        let (pri, app, sd, msg) = parse_5424(line);
        let id = sd
            .split("id=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("sd id")
            .to_string();
        assert!(
            sd.starts_with("[wdc@32473 ") && sd.contains("tenant=\"acme\""),
            "{sd}"
        );
        match app.as_str() {
            "wdc-tcp" => {
                assert_eq!(pri, 16 * 8 + 6);
                let v: serde_json::Value = serde_json::from_str(&msg).expect("ocsf json body");
                assert_eq!(v["metadata"]["uid"].as_str(), Some(id.as_str()));
                tcp_entries.push(v["raw_data"].as_str().expect("raw_data").to_string());
            }
            "wdc-tls" => {
                assert_eq!(pri, 4 * 8 + 6);
                assert!(msg.starts_with("CEF:0|Workday|Workday|1|"), "{msg}");
                assert!(msg.contains(&format!("externalId={id}")), "{msg}");
                tls_ids.push(id);
            }
            "wdc-udp" => {
                let v: serde_json::Value = serde_json::from_str(&msg).expect("raw json body");
                assert_eq!(v["id"].as_str(), Some(id.as_str()));
                udp_entries.push(v["event"].to_string());
            }
            other => panic!("unexpected app-name {other}"),
        }
    }
    // TCP and TLS: exactly what was sent, once each.
    let file_entries: Vec<String> = env.delivered();
    assert_same_multiset(&tcp_entries, &file_entries);
    let mut want_ids: Vec<String> = truth.keys().cloned().collect();
    want_ids.sort();
    tls_ids.sort();
    assert_eq!(tls_ids, want_ids);
    // UDP is at most once: nothing foreign, nothing twice, and on loopback nearly everything.
    assert!(udp_entries
        .iter()
        .all(|e| e.contains("\"systemAccount\":\"lmcneil\"")));
    assert!(
        udp_entries.len() <= lmcneil && udp_entries.len() * 100 >= lmcneil * 95,
        "UDP delivered {} of {lmcneil}",
        udp_entries.len()
    );
}

/// Reads RFC 6587 octet-counted frames until the peer closes or `limit` frames arrived.
async fn read_frames(sock: &mut tokio::net::TcpStream, limit: usize, out: &mut Vec<String>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        // Parse complete frames.
        while let Some(sp) = buf.iter().position(|&b| b == b' ') {
            let Ok(len) = std::str::from_utf8(&buf[..sp])
                .unwrap_or("x")
                .parse::<usize>()
            else {
                panic!("bad frame length")
            };
            if buf.len() < sp + 1 + len {
                break;
            }
            out.push(String::from_utf8_lossy(&buf[sp + 1..sp + 1 + len]).to_string());
            buf.drain(..sp + 1 + len);
            if out.len() >= limit {
                return;
            }
        }
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_resends_the_last_batch_after_the_receiver_drops_the_connection() {
    let env = Env::frozen(122, 600, 0, |_| {}).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let first_batch = 100;
    let server = tokio::spawn(async move {
        let mut got = Vec::new();
        // First connection: take one batch, then hang up.
        let (mut s, _) = listener.accept().await.expect("accept");
        read_frames(&mut s, first_batch, &mut got).await;
        drop(s);
        // Second connection: take everything.
        let (mut s, _) = listener.accept().await.expect("accept again");
        read_frames(&mut s, usize::MAX, &mut got).await;
        got
    });
    env.append_config(&format!("[[sink]]\nname = \"sl\"\ntype = \"syslog\"\ntransport = \"tcp\"\naddress = \"{addr}\"\nbatch_size = {first_batch}\n"));
    // The first run may end with the sink retrying after the hang-up; a second run finishes.
    let _ = env.run_once().await;
    env.run_once().await.expect("run --once");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Close the second connection from our side by dropping the daemon (done), then collect.
    let got = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server done")
        .expect("join");
    let ids: Vec<String> = got
        .iter()
        .map(|m| {
            m.split("id=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .expect("id")
                .to_string()
        })
        .collect();
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    let truth = file_ids(&env);
    assert_eq!(
        unique.len(),
        truth.len(),
        "events were lost across the reconnect"
    );
    let dups = ids.len() - unique.len();
    assert!(
        dups <= first_batch,
        "{dups} duplicates: more than the one resent batch"
    );
}
