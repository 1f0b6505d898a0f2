//! The syslog sink: RFC 5424 messages over UDP, TCP (RFC 6587 octet counting) or TLS
//! (RFC 5425), with a JSON or CEF body.
//!
//! Delivery guarantees, honestly: UDP is at most once (datagrams can vanish). TCP and TLS give
//! no application-level acknowledgement, so a write that reached the kernel is all we know. This
//! sink keeps the last batch it wrote and, whenever it has to reconnect (a failed write, or the
//! peer found closed before the next batch), sends that batch again before the new one: a
//! connection lost after a batch duplicates it rather than losing it. A connection that dies
//! with more than one batch unread in its buffers can still lose the older one, so treat plain
//! TCP as at least once for the last batch and at most once beyond it.

use super::{Ack, Batch, SinkError};
use crate::clock::rfc3339_ms;
use crate::config::{SyslogBody, SyslogSinkConfig, SyslogTransport};
use crate::store::StoredEvent;
use crate::workday::wire::parse_entry;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

const SEVERITY_INFO: u8 = 6;
/// The private enterprise number reserved for documentation (RFC 5612).
const SD_ID: &str = "wdc@32473";

enum Conn {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

pub struct SyslogSink {
    name: String,
    cfg: SyslogSinkConfig,
    hostname: String,
    conn: Option<Conn>,
    udp: Option<UdpSocket>,
    /// The last batch written on a stream connection, resent after a reconnect.
    last_written: Option<Vec<u8>>,
    tls: Option<tokio_rustls::TlsConnector>,
}

fn this_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "-".into())
}

/// RFC 5424 PARAM-VALUE escaping.
fn sd_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace(']', "\\]")
}

/// RFC 5424 header fields: printable US-ASCII without spaces, or "-".
fn header_field(s: &str, max: usize) -> String {
    let v: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if v.is_empty() {
        "-".into()
    } else {
        v
    }
}

fn cef_header(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\r', '\n'], " ")
}

fn cef_value(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('=', "\\=")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

/// An event as ArcSight CEF.
pub fn cef(ev: &StoredEvent) -> String {
    let e = parse_entry(&ev.raw);
    let id = hex::encode(ev.id);
    let sig = e.task_id.as_deref().unwrap_or("unknown");
    let name = e
        .task_display_name
        .as_deref()
        .or(e.task_id.as_deref())
        .unwrap_or("Workday activity");
    let mut ext = vec![
        format!("rt={}", e.request_time_ms.unwrap_or(ev.collected_at_ms)),
        format!("externalId={id}"),
        format!("cs1Label=tenant cs1={}", cef_value(&ev.tenant)),
    ];
    let mut put = |k: &str, v: &Option<std::borrow::Cow<str>>| {
        if let Some(v) = v {
            ext.push(format!("{k}={}", cef_value(v)));
        }
    };
    put("suser", &e.system_account);
    put("act", &e.activity_action);
    put("requestClientApplication", &e.user_agent);
    if let Some(ip) = e
        .ip_address
        .as_ref()
        .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok())
    {
        ext.push(format!("src={ip}"));
    }
    if let Some(s) = &e.session_id {
        ext.push(format!("cs2Label=sessionId cs2={}", cef_value(s)));
    }
    if let Some(t) = &e.target {
        if let Some(d) = &t.descriptor {
            ext.push(format!("cs3Label=target cs3={}", cef_value(d)));
        }
        if let Some(i) = &t.id {
            ext.push(format!("cs4Label=targetId cs4={}", cef_value(i)));
        }
    }
    if let Some(d) = &e.device_type {
        ext.push(format!("cs5Label=deviceType cs5={}", cef_value(d)));
    }
    format!(
        "CEF:0|Workday|Workday|1|{}|{}|3|{}",
        cef_header(sig),
        cef_header(name),
        ext.join(" ")
    )
}

impl SyslogSink {
    pub fn new(name: &str, cfg: SyslogSinkConfig) -> anyhow::Result<SyslogSink> {
        let tls = if cfg.transport == SyslogTransport::Tls {
            let mut roots = rustls::RootCertStore::empty();
            match &cfg.ca_file {
                Some(path) => {
                    use rustls::pki_types::pem::PemObject;
                    let certs =
                        rustls::pki_types::CertificateDer::pem_file_iter(path).map_err(|e| {
                            anyhow::anyhow!(
                                "sink {name}: cannot read ca_file {}: {e}",
                                path.display()
                            )
                        })?;
                    for c in certs {
                        let c = c.map_err(|e| {
                            anyhow::anyhow!(
                                "sink {name}: bad certificate in {}: {e}",
                                path.display()
                            )
                        })?;
                        roots.add(c)?;
                    }
                }
                None => {
                    for c in rustls_native_certs::load_native_certs().certs {
                        let _ = roots.add(c);
                    }
                }
            }
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
            Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
        } else {
            None
        };
        Ok(SyslogSink {
            name: name.to_string(),
            hostname: cfg.hostname.clone().unwrap_or_else(this_hostname),
            cfg,
            conn: None,
            udp: None,
            last_written: None,
            tls,
        })
    }

    /// One RFC 5424 message (without framing).
    pub fn message(&self, ev: &StoredEvent, line: &[u8]) -> Vec<u8> {
        let pri = self.cfg.facility * 8 + SEVERITY_INFO;
        let time = parse_entry(&ev.raw)
            .request_time_ms
            .unwrap_or(ev.collected_at_ms);
        let mut m = format!(
            "<{pri}>1 {} {} {} {} activity [{SD_ID} id=\"{}\" tenant=\"{}\"] ",
            rfc3339_ms(time),
            header_field(&self.hostname, 255),
            header_field(&self.cfg.app_name, 48),
            std::process::id(),
            hex::encode(ev.id),
            sd_escape(&ev.tenant),
        )
        .into_bytes();
        match self.cfg.body {
            SyslogBody::Json => m.extend_from_slice(line),
            SyslogBody::Cef => m.extend_from_slice(cef(ev).as_bytes()),
        }
        m
    }

    fn err(&self, what: &str, e: impl std::fmt::Display) -> SinkError {
        SinkError::transient(format!(
            "sink {}: {what} {}: {e}",
            self.name, self.cfg.address
        ))
    }

    async fn connect(&mut self) -> Result<(), SinkError> {
        let tcp = tokio::time::timeout(self.cfg.timeout, TcpStream::connect(&self.cfg.address))
            .await
            .map_err(|_| self.err("connecting to", "timed out"))?
            .map_err(|e| self.err("cannot connect to", e))?;
        let _ = tcp.set_nodelay(true);
        self.conn = Some(match &self.tls {
            None => Conn::Tcp(tcp),
            Some(connector) => {
                let host = self.cfg.server_name.clone().unwrap_or_else(|| {
                    self.cfg
                        .address
                        .rsplit_once(':')
                        .map(|(h, _)| h.trim_matches(['[', ']']).to_string())
                        .unwrap_or_default()
                });
                let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| {
                    SinkError::NeedsPerson(format!(
                        "sink {}: \"{host}\" is not a valid TLS server name: {e}",
                        self.name
                    ))
                })?;
                let tls = tokio::time::timeout(self.cfg.timeout, connector.connect(name, tcp))
                    .await
                    .map_err(|_| self.err("TLS handshake with", "timed out"))?
                    .map_err(|e| {
                        if e.to_string().to_lowercase().contains("certificate") {
                            SinkError::NeedsPerson(format!(
                                "sink {}: the TLS certificate of {} is not trusted ({e}); set ca_file or server_name",
                                self.name, self.cfg.address
                            ))
                        } else {
                            self.err("TLS handshake with", e)
                        }
                    })?;
                Conn::Tls(Box::new(tls))
            }
        });
        Ok(())
    }

    /// Whether the peer has closed a plain TCP connection (a read would return 0 bytes).
    fn peer_closed(&self) -> bool {
        match &self.conn {
            Some(Conn::Tcp(s)) => {
                let mut buf = [0u8; 1];
                matches!(s.try_read(&mut buf), Ok(0))
            }
            _ => false,
        }
    }

    async fn write_stream(&mut self, framed: &[u8]) -> std::io::Result<()> {
        match self.conn.as_mut() {
            Some(Conn::Tcp(s)) => {
                s.write_all(framed).await?;
                s.flush().await
            }
            Some(Conn::Tls(s)) => {
                s.write_all(framed).await?;
                s.flush().await
            }
            None => Err(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "not connected",
            )),
        }
    }

    pub async fn send(&mut self, batch: &Batch) -> Result<Ack, SinkError> {
        let messages: Vec<Vec<u8>> = batch
            .events
            .iter()
            .zip(batch.lines())
            .map(|(ev, line)| self.message(ev, line))
            .collect();
        if self.cfg.transport == SyslogTransport::Udp {
            if self.udp.is_none() {
                let bind = if self.cfg.address.starts_with('[') {
                    "[::]:0"
                } else {
                    "0.0.0.0:0"
                };
                let sock = UdpSocket::bind(bind)
                    .await
                    .map_err(|e| self.err("cannot open a UDP socket for", e))?;
                sock.connect(&self.cfg.address)
                    .await
                    .map_err(|e| self.err("cannot resolve", e))?;
                self.udp = Some(sock);
            }
            if let Some(sock) = &self.udp {
                for m in &messages {
                    if let Err(e) = sock.send(m).await {
                        self.udp = None;
                        return Err(SinkError::transient(format!(
                            "sink {}: UDP send failed: {e}",
                            self.name
                        )));
                    }
                }
            }
            return Ok(Ack::default());
        }
        // RFC 6587 octet counting: "LEN SP MSG".
        let mut framed = Vec::with_capacity(messages.iter().map(|m| m.len() + 8).sum());
        for m in &messages {
            framed.extend_from_slice(format!("{} ", m.len()).as_bytes());
            framed.extend_from_slice(m);
        }
        if self.conn.is_some() && self.peer_closed() {
            tracing::info!(sink = %self.name, "syslog receiver closed the connection; reconnecting");
            self.conn = None;
        }
        if self.conn.is_none() {
            self.connect().await?;
            // After a reconnect, the previous batch may not have arrived: send it again.
            if let Some(prev) = self.last_written.clone() {
                if let Err(e) = self.write_stream(&prev).await {
                    self.conn = None;
                    return Err(self.err("writing to", e));
                }
            }
        }
        if let Err(e) = self.write_stream(&framed).await {
            self.conn = None;
            return Err(self.err("writing to", e));
        }
        self.last_written = Some(framed);
        Ok(Ack::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cef_escapes_and_maps() {
        let ev = StoredEvent {
            seq: 1,
            id: [1; 32],
            tenant: "acme".into(),
            collected_at_ms: 0,
            raw: r#"{"requestTime":"2026-11-27T21:48:30.832Z","systemAccount":"a=b","taskId":"t|1","taskDisplayName":"Pipe | and \\ slash","activityAction":"WRITE","ipAddress":"203.0.113.7","sessionId":"s1"}"#.into(),
        };
        let c = cef(&ev);
        assert!(
            c.starts_with("CEF:0|Workday|Workday|1|t\\|1|Pipe \\| and \\\\ slash|3|"),
            "{c}"
        );
        assert!(
            c.contains("suser=a\\=b") && c.contains("src=203.0.113.7") && c.contains("act=WRITE"),
            "{c}"
        );
        assert!(c.contains("rt=1795816110832"), "{c}");
    }

    #[test]
    fn structured_data_escaping() {
        assert_eq!(sd_escape(r#"a"b]c\d"#), r#"a\"b\]c\\d"#);
        assert_eq!(header_field("my host", 255), "myhost");
        assert_eq!(header_field("", 10), "-");
    }
}
