//! Thin entry point: parse the command line, call the library, print the error chain.

use clap::Parser;
use std::process::ExitCode;
use std::time::Duration;
use workday_collector::cli::{Cli, Command};
use workday_collector::config::{Config, Format};
use workday_collector::{bench, daemon, demo, telemetry};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(
        cli.command,
        Command::Run { .. } | Command::Bench { .. } | Command::Demo { .. }
    ) {
        limit_malloc_arenas();
    }
    telemetry::init(cli.log_format, &cli.log_level);
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// glibc gives each thread that allocates its own malloc arena, which keeps freed window
/// buffers: more memory, and measurably slower (docs/performance.md). The systemd unit sets
/// `MALLOC_ARENA_MAX=2`; started any other way, the long-running commands set it themselves by
/// running this binary again in the same process (same pid) with it set. An operator's own
/// value is left alone.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        use std::os::unix::process::CommandExt;
        if let Ok(exe) = std::env::current_exe() {
            let err = std::process::Command::new(exe)
                .args(std::env::args_os().skip(1))
                .env("MALLOC_ARENA_MAX", "2")
                .exec();
            // Only returns on failure: carry on as we are.
            eprintln!("note: could not restart with MALLOC_ARENA_MAX=2 ({err}); continuing");
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    // Few blocking threads: database calls are serialized per connection anyway, and every
    // extra thread can grow its own glibc malloc arena that keeps freed window buffers
    // (measured: peak RSS of a 1M-event backfill 105 MB with tokio's default of 512, see
    // docs/performance.md). Four: a window's inserts, the next window's ids, and a sink's
    // reads and cursor commits all run at once during a backfill.
    Ok(tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(4)
        .enable_all()
        .build()?)
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::CheckConfig { config } => match Config::load(&config) {
            Ok(c) => {
                println!(
                    "{}: OK ({} tenant(s), {} sink(s), state in {})",
                    config.display(),
                    c.tenants.len(),
                    c.sinks.len(),
                    c.state_dir.display()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("{e}");
                Ok(ExitCode::FAILURE)
            }
        },
        Command::Run { config, once } => {
            let path = config;
            let config = Config::load(&path)?;
            let signals = daemon::signals()?;
            let mut opts = daemon::RunOptions::new(once, signals.shutdown);
            opts.reopen = signals.reopen;
            opts.config_path = Some(path);
            runtime()?.block_on(daemon::run(config, opts))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Authorize {
            config,
            tenant,
            code,
            import_refresh_token,
        } => {
            runtime()?.block_on(workday_collector::auth::authorize::command(
                &config,
                &tenant,
                code,
                import_refresh_token,
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor {
            config,
            tenant,
            json,
        } => {
            let report =
                runtime()?.block_on(workday_collector::doctor::run(&config, tenant.as_deref()));
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.render_text());
            }
            Ok(if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Status { config, json } => {
            let config = Config::load(&config)?;
            let store = workday_collector::store::Store::open(&config.database_path())?;
            let now = workday_collector::clock::Clock::system().now_ms();
            let snap = workday_collector::status::snapshot(&config, &store, now)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&snap)?);
            } else {
                print!("{}", snap.render_text());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::DeadLetters {
            config,
            sink,
            replay,
        } => {
            let config = Config::load(&config)?;
            if let Some(s) = &sink {
                if !config.sinks.iter().any(|c| &c.name == s) {
                    anyhow::bail!("no sink named {s} in the config");
                }
            }
            let mut store = workday_collector::store::Store::open(&config.database_path())?;
            if replay {
                let n = store.mark_dead_letters_for_replay(sink.as_deref())?;
                println!("marked {n} dead letter(s) for replay; a running daemon sends them within seconds, or run 'workday-collector run --once'");
            } else {
                let rows = store.dead_letter_summary()?;
                let rows: Vec<_> = rows
                    .into_iter()
                    .filter(|(s, _, _)| sink.as_ref().is_none_or(|x| x == s))
                    .collect();
                if rows.is_empty() {
                    println!("no dead letters");
                }
                for (s, n, reason) in rows {
                    println!("{s}: {n} event(s); latest reason: {reason}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { once, dir, events } => {
            let signals = daemon::signals()?;
            let summary = runtime()?.block_on(demo::demo(&dir, once, events, signals.shutdown))?;
            demo::print_summary(&summary);
            Ok(ExitCode::SUCCESS)
        }
        Command::Simulate {
            listen,
            seed,
            events,
            busy_hour_events,
            rotate_refresh_tokens,
            expires_in,
            write_config,
            page_latency_ms,
        } => {
            let shutdown = daemon::signals()?.shutdown;
            runtime()?.block_on(demo::simulate(
                demo::SimulateOptions {
                    listen,
                    seed,
                    events,
                    busy_hour_events,
                    rotate: rotate_refresh_tokens,
                    expires_in,
                    write_config,
                    page_latency_ms,
                },
                shutdown,
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            events,
            format,
            latency,
            page_latency_ms,
            max_concurrent_requests,
            max_requests_per_second,
            idle_seconds,
            dir,
            keep,
        } => {
            let format = match format.as_str() {
                "raw" => Format::Raw,
                "ocsf" => Format::Ocsf,
                "ecs" => Format::Ecs,
                other => anyhow::bail!("--format {other}: expected raw, ocsf or ecs"),
            };
            let (default_c, default_r) = if latency { (3, Some(10)) } else { (4, None) };
            let opts = bench::BenchOptions {
                events,
                format,
                page_latency: latency.then(|| Duration::from_millis(page_latency_ms)),
                max_concurrent_requests: max_concurrent_requests.unwrap_or(default_c).max(1),
                max_requests_per_second: match max_requests_per_second {
                    Some(0) => None,
                    Some(r) => Some(r),
                    None => default_r,
                },
                idle: Duration::from_secs(idle_seconds),
                dir,
                keep,
            };
            runtime()?.block_on(bench::bench(opts))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
