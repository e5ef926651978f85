//! `kmskit-server`: the Alibaba Cloud KMS API over a kmskit file keystore.
//!
//! ```text
//! kmskit-server --config /etc/kmskit/server.toml
//! kmskit-server --dev [--bind 127.0.0.1:0] [--port-file FILE]
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use kmskit_core::audit::{AuditLog, AuditSink, Durability, FileSink};
use kmskit_core::governance::Governance;
use kmskit_core::{KeyProvider, KmsConfig, Rotator};
use kmskit_file::{FileKms, FileKmsExt, FileStore, RootKey};
use kmskit_server::config::Config;
use kmskit_server::sign::{AccessKeySecret, new_nonce};
use kmskit_server::{AccessKey, Server};

/// The Alibaba Cloud KMS API (2016-01-20) over a kmskit keystore.
#[derive(Debug, Parser)]
#[command(name = "kmskit-server", version)]
struct Args {
    /// The TOML configuration file.
    #[arg(long, short, required_unless_present = "dev")]
    config: Option<PathBuf>,
    /// Development mode: a fresh temporary keystore and one all-powerful access key, taken from
    /// KMSKIT_DEV_ACCESS_KEY_ID / KMSKIT_DEV_ACCESS_KEY_SECRET or generated. NOT FOR PRODUCTION.
    #[arg(long, conflicts_with = "config")]
    dev: bool,
    /// Listen address (overrides the configuration; default 127.0.0.1:8080).
    #[arg(long)]
    bind: Option<SocketAddr>,
    /// Write the bound port to this file once the server accepts connections.
    #[arg(long)]
    port_file: Option<PathBuf>,
    /// Dev mode: keep the keystore in this directory instead of a temporary one.
    #[arg(long, requires = "dev")]
    data_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kmskit-server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(access_log: bool) {
    let default = if access_log {
        "info"
    } else {
        "info,kmskit_server::access=off"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The audit log in `dir`: hash-chained JSON lines, group commit (a call returns once its event is
/// queued; [`AuditLog::flush`] at shutdown makes every event durable).
fn audit_log(dir: &std::path::Path) -> Result<Arc<AuditLog>, BoxError> {
    let sink: Arc<dyn AuditSink> =
        Arc::new(FileSink::open(dir).map_err(|e| format!("audit directory {}: {e}", dir.display()))?);
    Ok(Arc::new(
        AuditLog::new(vec![sink])?.durability(Durability::GroupCommit),
    ))
}

fn run(args: Args) -> Result<(), BoxError> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async_run(args))
}

async fn async_run(args: Args) -> Result<(), BoxError> {
    let mut _tempdir = None;
    let audit: Arc<AuditLog>;
    let (builder, bind) = if args.dev {
        init_logging(true);
        let dir = match &args.data_dir {
            Some(d) => d.clone(),
            None => {
                let t = tempfile::Builder::new().prefix("kmskit-server-dev.").tempdir()?;
                let p = t.path().join("keystore");
                _tempdir = Some(t);
                p
            }
        };
        let root = RootKey::generate();
        let store = FileStore::open(&dir, &root)?;
        // All-powerful (no enforcement) but audited.
        let log = audit_log(&dir.join("audit"))?;
        let kcfg = KmsConfig::new().governance(Arc::new(Governance::new().audit(log.clone())));
        let kms = Arc::new(FileKms::with_store_config(store, kcfg)?);
        audit = log;
        let (id, secret, generated) = match (
            std::env::var("KMSKIT_DEV_ACCESS_KEY_ID"),
            std::env::var("KMSKIT_DEV_ACCESS_KEY_SECRET"),
        ) {
            (Ok(id), Ok(secret)) if !id.is_empty() && !secret.is_empty() => (id, secret, false),
            _ => (format!("LTAIdev{}", &new_nonce()[..16]), new_nonce(), true),
        };
        eprintln!("==================================================================================");
        eprintln!(" kmskit-server DEV MODE: NOT FOR PRODUCTION.");
        eprintln!(
            " A throw-away keystore in {} (random root key, lost at exit),",
            dir.display()
        );
        eprintln!(
            " one all-powerful access key, no TLS; calls audited in {}.",
            dir.join("audit").display()
        );
        eprintln!("   AccessKeyId:     {id}");
        if generated {
            // Printed once, on purpose: dev mode exists to hand out a working key.
            eprintln!("   AccessKeySecret: {secret}");
        } else {
            eprintln!("   AccessKeySecret: (from KMSKIT_DEV_ACCESS_KEY_SECRET)");
        }
        eprintln!("==================================================================================");
        let b = Server::builder()
            .provider(kms.clone() as Arc<dyn KeyProvider>)
            .rotator(kms as Arc<dyn Rotator>)
            .host_id("kms.kmskit.dev")
            .access_key(AccessKey::new(id, AccessKeySecret::new(secret), "dev-admin"));
        (
            b,
            args.bind
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
        )
    } else {
        let path = args.config.clone().ok_or("--config is required without --dev")?;
        let cfg = Config::from_file(&path)?;
        init_logging(cfg.access_log);
        let ks = cfg
            .keystore
            .as_ref()
            .ok_or_else(|| format!("{}: a [keystore] table is required", path.display()))?
            .get_ref();
        let root = match (&ks.root_key_file, &ks.root_key_env) {
            (Some(f), _) => RootKey::from_key_file(f)?,
            (None, Some(var)) => {
                let v = zeroize::Zeroizing::new(
                    std::env::var(var).map_err(|_| format!("root key variable {var} is not set"))?,
                );
                RootKey::from_base64(&v)?
            }
            (None, None) => return Err("[keystore] needs root_key_file or root_key_env".into()),
        };
        let mut kcfg = KmsConfig::new();
        if let Some(r) = &cfg.region {
            kcfg = kcfg.region(r.clone())?;
        }
        if let Some(a) = &cfg.account {
            kcfg = kcfg.account(a.clone())?;
        }
        let store = FileStore::open(&ks.dir, &root)?;
        let audit_dir = cfg.audit_dir().ok_or("no audit directory")?;
        let log = audit_log(&audit_dir)?;
        let policies = cfg.policy_set()?;
        let mut gov = Governance::new().audit(log.clone());
        let enforcing = policies.is_some();
        if let Some(p) = policies {
            gov = gov.policies(p);
        }
        kcfg = kcfg.governance(Arc::new(gov));
        audit = log;
        let kms = Arc::new(FileKms::with_store_config(store, kcfg)?);
        tracing::info!(audit = %audit_dir.display(), enforcing, "audit trail and access control");
        let mut b = Server::builder()
            .provider(kms.clone() as Arc<dyn KeyProvider>)
            .rotator(kms as Arc<dyn Rotator>);
        for mut k in cfg.access_keys()? {
            if enforcing {
                // The engine decides (and audits the denial) from the generated policies.
                k.allowed_actions = vec!["*".to_owned()];
            }
            b = b.access_key(k);
        }
        if let Some(h) = &cfg.host_id {
            b = b.host_id(h.clone());
        }
        if let Some(s) = cfg.max_skew_secs {
            b = b.max_skew_secs(s);
        }
        if let Some(m) = cfg.max_body_bytes {
            b = b.max_body(m);
        }
        if let Some(r) = cfg.rate_limit {
            b = b.rate_limit(r.requests_per_second, r.burst.unwrap_or(r.requests_per_second));
        }
        if let Some(p) = &cfg.proxy {
            b = b.trusted_proxy(p.header.clone(), p.trusted.clone());
        }
        if let Some(tls) = cfg.tls_config()? {
            b = b.tls(tls);
        }
        (b, args.bind.unwrap_or(cfg.bind))
    };
    let server = builder.build()?;
    let running = server
        .bind(bind)
        .await
        .map_err(|e| format!("cannot bind {bind}: {e}"))?;
    let addr = running.local_addr().ok_or("no local address")?;
    tracing::info!(%addr, "kmskit-server listening");
    if let Some(pf) = &args.port_file {
        let tmp = pf.with_extension("tmp");
        std::fs::write(&tmp, format!("{}\n", addr.port()))?;
        std::fs::rename(&tmp, pf)?;
    }
    let handle = running.shutdown_handle();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received");
        handle.shutdown();
    });
    running.wait().await;
    {
        audit.flush().map_err(|e| format!("audit flush: {e}"))?;
        tracing::info!("audit log flushed");
    }
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
