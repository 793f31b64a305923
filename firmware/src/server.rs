//! `ironseal server`: start-up, in dev mode or from a config file, and shutdown.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use api::pkcs11::Pkcs11Listener;
use api::Listener;
use base64::Engine;
use engine::storage::{RedbBackend, Storage};
use engine::Core;
use zeroize::Zeroizing;

use crate::cli::Flags;
use crate::config::{self, Config, LogFormat, Pkcs11Block, SealBlock, StorageBlock};
use crate::hardening;

const BOOLEANS: &[&str] = &["dev", "dev-no-store-token", "dev-tls"];
const VALUED: &[&str] = &[
    "config",
    "dev-tls-san",
    "dev-listen-address",
    "dev-root-token-id",
    "dev-data-dir",
    "dev-pkcs11-socket",
    "log-level",
];

pub fn run(args: &[String]) -> ExitCode {
    let flags = match Flags::parse(args, BOOLEANS, VALUED) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // A worker that runs out of work leaves no key behind in its dead stack frames.
        .on_thread_park(engine::compute::scrub_stack)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = if flags.is_set("dev") {
        runtime.block_on(dev(&flags))
    } else if let Some(path) = flags.get("config") {
        runtime.block_on(from_config(&flags, Path::new(path)))
    } else {
        Err(anyhow::anyhow!(
            "no configuration: use -config FILE, or -dev for a development server"
        ))
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("IRONSEAL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Standard => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
    };
    // Every start of a build without memory hygiene says so, whatever the log level.
    if let Some(warning) = crate::NO_HYGIENE_WARNING {
        tracing::error!("{warning}");
    }
}

pub(crate) fn open_storage(path: &Path) -> anyhow::Result<Arc<Storage>> {
    let backend = RedbBackend::open(path).map_err(|e| {
        anyhow::Error::new(e).context(format!("cannot open storage {}", path.display()))
    })?;
    Ok(Storage::new(Arc::new(backend)))
}

/// Opens the storage a config file's `storage` block names.
pub(crate) fn open_configured_storage(block: &StorageBlock) -> anyhow::Result<Arc<Storage>> {
    match block {
        StorageBlock::Redb { path } => open_storage(path),
        #[cfg(feature = "postgresql")]
        StorageBlock::Postgresql(pg) => {
            let backend = engine::storage::postgresql::PostgresBackend::open(pg).map_err(|e| {
                anyhow::Error::new(e).context(format!("cannot open storage {block}"))
            })?;
            Ok(Storage::new(Arc::new(backend)))
        }
        #[cfg(feature = "fdb")]
        StorageBlock::Foundationdb(fdb) => {
            use engine::storage::foundationdb::{open, FdbConfig};
            let backend = open(&FdbConfig {
                cluster_file: fdb.cluster_file.clone(),
                prefix: fdb.prefix.clone(),
                api_version: fdb.api_version,
            })
            .map_err(|e| anyhow::Error::new(e).context(format!("cannot open storage {block}")))?;
            Ok(Storage::new(backend))
        }
        #[cfg(not(feature = "fdb"))]
        StorageBlock::Foundationdb(_) => {
            anyhow::bail!("storage \"foundationdb\" needs an ironseal built with the `fdb` feature")
        }
    }
}

/// The listener's TLS: the rustls configuration and the certificate's fingerprint.
type Tls = (Arc<api::tls::ServerConfig>, String);

async fn bind(
    addr: SocketAddr,
    tls: Option<Tls>,
    limits: api::Limits,
    ui: bool,
) -> anyhow::Result<Listener> {
    let tcp = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let (tls, tls_cert_sha256) = match tls {
        Some((config, sha256)) => (Some(config), Some(sha256)),
        None => (None, None),
    };
    Ok(Listener {
        tcp,
        tls,
        limits,
        ui,
        tls_cert_sha256,
    })
}

/// A data directory only the daemon's user can enter when the daemon makes it; an
/// existing one (possibly shared, such as `/srv`) keeps its mode.
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    api::private_dir::create_private_dir(dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))
}

/// The generated CA and server certificate (with `names` besides the local ones), and
/// the rustls configuration serving them; prints the CA's fingerprint so a remote
/// client can check it before trusting the CA.
fn generated_tls(
    dir: &Path,
    names: &[String],
    min: api::tls::TlsVersion,
    max: api::tls::TlsVersion,
    client: &api::tls::ClientCerts,
) -> anyhow::Result<(Tls, PathBuf, String)> {
    let generated = api::tls::ensure_generated(dir, names)?;
    let ca_sha256 = api::tls::fingerprint(&generated.ca_pem)?;
    if generated.ca_replaced {
        tracing::warn!(
            ca = %generated.ca_pem.display(),
            ca_sha256 = %ca_sha256,
            "the certificate names changed, so the TLS CA changed: clients must trust the new CA"
        );
        println!(
            "==> TLS: the certificate names changed, so the CA changed: clients must trust the new CA {} (SHA-256 {ca_sha256})",
            generated.ca_pem.display()
        );
    }
    let cert_sha256 = api::tls::fingerprint(&generated.cert_pem)?;
    tracing::info!(
        ca = %generated.ca_pem.display(),
        ca_sha256 = %ca_sha256,
        cert_sha256 = %cert_sha256,
        "using the appliance's generated TLS certificate; trust its CA"
    );
    let config =
        api::tls::server_config(&generated.cert_pem, &generated.key_pem, min, max, client)?;
    Ok(((config, cert_sha256), generated.ca_pem, ca_sha256))
}

async fn dev(flags: &Flags) -> anyhow::Result<()> {
    init_logging(
        flags.get("log-level").unwrap_or("info"),
        LogFormat::Standard,
    );
    if let Err(e) = hardening::disable_core_dumps() {
        tracing::warn!(error = %e, "core dumps stay enabled");
    }
    let addr: SocketAddr = flags
        .get("dev-listen-address")
        .unwrap_or("127.0.0.1:8200")
        .parse()
        .map_err(|_| anyhow::anyhow!("-dev-listen-address must be IP:port"))?;
    let (data_dir, _temp) = match flags.get("dev-data-dir") {
        Some(d) => (PathBuf::from(d), None),
        None => {
            let t = tempfile::Builder::new().prefix("ironseal-dev-").tempdir()?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    create_private_dir(&data_dir)?;
    let storage_path = data_dir.join("ironseal.redb");
    let core = Core::with_settings(open_storage(&storage_path)?, settings_from_env()?);
    let init = core
        .dev_setup(flags.get("dev-root-token-id").map(String::from))
        .await
        .map_err(|e| anyhow::anyhow!("dev setup failed: {e}"))?;
    // `-dev-tls` as in Vault: a generated CA and certificate, `-dev-tls-san` adding
    // names (comma-separated) for remote clients.
    let tls = if flags.is_set("dev-tls") {
        let names: Vec<String> = flags
            .get("dev-tls-san")
            .unwrap_or("")
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        Some(generated_tls(
            &data_dir.join("tls"),
            &names,
            api::tls::TlsVersion::Tls12,
            api::tls::TlsVersion::Tls13,
            &api::tls::ClientCerts::Requested,
        )?)
    } else {
        None
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let (tls_config, tls_lines) = match tls {
        Some((config, ca, sha256)) => (
            Some(config),
            format!(
                "\x20   $ export VAULT_CACERT='{}'\n\n\
                 The listener's certificate is signed by that CA, whose SHA-256 fingerprint is\n\
                 \x20   {sha256}\n\
                 Check it on a remote client before trusting the CA.\n\n",
                ca.display()
            ),
        ),
        None => (None, String::new()),
    };
    // As Vault's dev server, with the web console.
    let listener = bind(addr, tls_config, api::Limits::default(), true).await?;
    let bound = listener.tcp.local_addr()?;
    let socket = match flags.get("dev-pkcs11-socket") {
        Some(p) => PathBuf::from(p),
        None => default_dev_socket(
            std::env::var_os("XDG_RUNTIME_DIR").as_deref(),
            api::pkcs11::socket::own_uid(),
        ),
    };
    let pkcs11 = Pkcs11Listener::new(api::pkcs11::Options::default())
        .with_socket(&socket, vec![api::pkcs11::socket::own_uid()])
        .map_err(|e| anyhow::anyhow!("{e} (-dev-pkcs11-socket=PATH serves it elsewhere)"))?;
    let unseal_key = init
        .keys
        .first()
        .map(|k| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(k.as_bytes()))
        .unwrap_or_default();
    println!(
        "==> Ironseal server configuration:\n\n\
         \x20            Api Address: {scheme}://{bound}\n\
         \x20            Web Console: {scheme}://{bound}/ui\n\
         \x20         PKCS#11 Socket: {socket}\n\
         \x20                 Storage: redb ({})\n\
         \x20                 Version: Ironseal v{}\n\n\
         WARNING! dev mode is enabled! In this mode, Ironseal runs entirely unsealed\n\
         with a single unseal key.\n\n\
         You may need to set the following environment variables:\n\n\
         \x20   $ export VAULT_ADDR='{scheme}://{bound}'\n\
         \x20   $ export IRONSEAL_PKCS11_SOCKET='{socket}'\n\n\
         {tls_lines}\
         The unseal key and root token are displayed below in case you want to\n\
         seal/unseal the Vault or re-authenticate.\n\n\
         Unseal Key: {unseal_key}\n\
         Root Token: {}\n\n\
         The PKCS#11 token's user PIN is the root token.\n\n\
         Development mode should NOT be used in production installations!\n",
        storage_path.display(),
        engine::core::VERSION,
        init.root_token.as_str(),
        socket = socket.display(),
    );
    drop(init);
    serve_until_signal(core, listener, Some(pkcs11)).await
}

/// `-dev-pkcs11-socket`'s default: in the user's runtime directory, else in a directory
/// of the user's own under /tmp (made 0700; refused if someone else made it).
fn default_dev_socket(runtime_dir: Option<&OsStr>, uid: u32) -> PathBuf {
    match runtime_dir.filter(|d| !d.is_empty()) {
        Some(dir) => Path::new(dir).join("ironseal-pkcs11.sock"),
        None => PathBuf::from(format!("/tmp/ironseal-{uid}/pkcs11.sock")),
    }
}

/// The PKCS#11 listener the `pkcs11` block describes, bound.
async fn bind_pkcs11(block: &Pkcs11Block) -> anyhow::Result<Pkcs11Listener> {
    let mut listener = Pkcs11Listener::new(api::pkcs11::Options {
        token_label: block.token_label.clone(),
        max_connections: block.max_connections,
        max_connections_per_peer: block.max_connections_per_peer,
        pins: pin_names(&block.pins)?,
    });
    if let Some(path) = &block.socket {
        let allowed = block
            .allowed_uids
            .clone()
            .unwrap_or_else(|| vec![api::pkcs11::socket::own_uid()]);
        listener = listener.with_socket(path, allowed)?;
    }
    if let Some(tcp) = &block.tcp {
        let tls = api::pkcs11::tls::server_config(
            &tcp.tls_cert_file,
            &tcp.tls_key_file,
            &tcp.tls_client_ca_file,
        )?;
        listener = listener
            .with_tcp(tcp.address, tls)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen for PKCS#11 on {}: {e}", tcp.address))?;
    }
    Ok(listener)
}

/// The tokens of the `pin` entries, read once at start from files other users cannot
/// read.
fn pin_names(entries: &[(String, PathBuf)]) -> anyhow::Result<api::pkcs11::pins::PinNames> {
    let mut names = api::pkcs11::pins::PinNames::default();
    for (name, file) in entries {
        hardening::refuse_world_readable(file)?;
        let text = Zeroizing::new(std::fs::read_to_string(file).map_err(|e| {
            anyhow::anyhow!(
                "cannot read the token of pin {name:?} from {}: {e}",
                file.display()
            )
        })?);
        let token = text.trim();
        if token.is_empty() {
            anyhow::bail!("{} (pin {name:?}) holds no token", file.display());
        }
        if !names.insert(name.clone(), Zeroizing::new(token.to_string())) {
            anyhow::bail!("PIN name {name:?} is given twice");
        }
    }
    Ok(names)
}

async fn from_config(flags: &Flags, path: &Path) -> anyhow::Result<()> {
    let config: Config = config::load(path)?;
    init_logging(
        flags
            .get("log-level")
            .or(config.log_level.as_deref())
            .unwrap_or("info"),
        config.server.log_format,
    );
    hardening::refuse_world_readable(path)?;
    for block in std::iter::once(&config.seal).chain(config.previous_seal.as_ref()) {
        if let SealBlock::Pkcs11 {
            pin_file: Some(pin),
            ..
        } = block
        {
            if pin.exists() {
                hardening::refuse_world_readable(pin)?;
            }
        }
    }
    hardening::disable_core_dumps()?;
    if !config.disable_mlock {
        hardening::lock_memory()?;
    }
    let seals = engine::Seals {
        device: seal_device(&config.seal, &config.data_dir)?,
        previous: match &config.previous_seal {
            Some(b) => seal_device(b, &config.data_dir)?,
            None => None,
        },
    };
    if let Some(d) = &seals.device {
        tracing::info!(seal = %d.kind(), device = %d.describe(), "hardware seal configured");
    }
    if config.data_dir != Path::new(".") {
        create_private_dir(&config.data_dir)?;
    }
    let mut settings = engine::Settings {
        leases: config.leases,
        ..settings_from_env()?
    };
    if let Some(n) = config.max_batch_items {
        settings.transit.max_batch_items = n;
    }
    settings.node_name = match &config.node_name {
        Some(name) => name.clone(),
        None => host_name(),
    };
    let core = Core::with(open_configured_storage(&config.storage)?, seals, settings);
    let tls = if config.listener.tls_disable {
        tracing::warn!("TLS is disabled on the listener: only use this behind a TLS terminator");
        None
    } else {
        let l = &config.listener;
        match (&l.tls_cert_file, &l.tls_key_file) {
            (Some(cert), Some(key)) => Some((
                api::tls::server_config(
                    cert,
                    key,
                    l.tls_min_version,
                    l.tls_max_version,
                    &l.client_certs,
                )?,
                api::tls::fingerprint(cert)?,
            )),
            _ => {
                let (tls, ca, sha256) = generated_tls(
                    &config.data_dir.join("tls"),
                    &l.tls_san,
                    l.tls_min_version,
                    l.tls_max_version,
                    &l.client_certs,
                )?;
                println!(
                    "==> TLS: generated certificate, CA {} (SHA-256 {sha256})",
                    ca.display()
                );
                Some(tls)
            }
        }
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listener = bind(
        config.listener.address,
        tls,
        config.listener.limits.clone(),
        config.server.ui,
    )
    .await?;
    let bound = listener.tcp.local_addr()?;
    let pkcs11 = match &config.pkcs11 {
        Some(block) => Some(bind_pkcs11(block).await?),
        None => None,
    };
    tracing::info!(address = %format!("{scheme}://{bound}"), storage = %config.storage, seal = %config.seal.name(), "ironseal started");
    println!("==> Ironseal server started! Api Address: {scheme}://{bound}");
    if config.server.ui {
        println!("==> Web console: {scheme}://{bound}/ui");
    }
    if let Some(p) = &pkcs11 {
        if let Some(path) = p.socket_path() {
            println!("==> PKCS#11 socket: {}", path.display());
        }
        if let Some(addr) = p.tcp_address() {
            println!("==> PKCS#11 address (mutual TLS): {addr}");
        }
    }
    serve_until_signal(core, listener, pkcs11).await
}

/// The hardware behind a seal block (None for Shamir).
fn seal_device(
    block: &SealBlock,
    data_dir: &Path,
) -> anyhow::Result<Option<Arc<dyn hsm_bridge::SealDevice>>> {
    let _ = data_dir;
    Ok(match block {
        SealBlock::Shamir => None,
        #[cfg(feature = "pkcs11")]
        SealBlock::Pkcs11 {
            lib,
            slot,
            token_label,
            key_label,
            generate_key,
            pin_file,
        } => Some(Arc::new(hsm_bridge::pkcs11::Pkcs11Device::new(
            hsm_bridge::pkcs11::Pkcs11Config {
                lib: lib.clone(),
                slot: *slot,
                token_label: token_label.clone(),
                key_label: key_label.clone(),
                generate_key: *generate_key,
                pin_file: pin_file.clone(),
            },
        ))),
        #[cfg(feature = "tpm2")]
        SealBlock::Tpm2 { tcti, pcrs } => Some(Arc::new(hsm_bridge::tpm2::Tpm2Device::new(
            hsm_bridge::tpm2::Tpm2Config {
                tcti: tcti.clone(),
                pcrs: pcrs.clone(),
                dir: data_dir.to_path_buf(),
            },
        )?)),
        #[allow(unreachable_patterns)]
        other => anyhow::bail!("this build has no {} seal support", other.name()),
    })
}

async fn serve_until_signal(
    core: Arc<Core>,
    listener: Listener,
    pkcs11: Option<Pkcs11Listener>,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    core.set_cloud_providers(Arc::new(cloud::Providers::new()));
    let housekeeping = tokio::spawn(housekeeping(core.clone()));
    let auto_unseal = tokio::spawn(core.clone().run_auto_unseal());
    let reopen = tokio::spawn(reopen_audit_on_hangup(core.clone()));
    let pkcs11 = async {
        match pkcs11 {
            Some(l) => api::pkcs11::serve(core.clone(), l).await,
            None => std::future::pending().await,
        }
    };
    // Leaving the select drops the PKCS#11 listener, which removes its socket file.
    tokio::select! {
        r = api::serve(core.clone(), listener) => r?,
        () = pkcs11 => {},
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    housekeeping.abort();
    auto_unseal.abort();
    reopen.abort();
    // Sealing drops every key from memory before the process goes.
    core.shutdown().await;
    tracing::info!("shut down");
    Ok(())
}

/// SIGHUP reopens the audit files, as Vault does, so they can be rotated.
async fn reopen_audit_on_hangup(core: Arc<Core>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; audit files will not be reopened");
        return;
    };
    while hup.recv().await.is_some() {
        let failures = core.reopen_audit();
        if failures.is_empty() {
            tracing::info!("audit devices reopened");
        }
        for f in failures {
            tracing::error!(error = %f, "audit device could not be reopened; requests are refused until it can");
        }
    }
}

/// How often housekeeping runs (`Core::tick`, which runs the periodic tasks that are
/// due, each at its own interval), unless `IRONSEAL_HOUSEKEEPING_INTERVAL` says
/// otherwise.
const HOUSEKEEPING_PERIOD: std::time::Duration = std::time::Duration::from_secs(1);

/// A duration from the environment (`30`, `30s`, `5m`), if the variable is set.
fn env_duration(var: &str) -> anyhow::Result<Option<u64>> {
    match std::env::var(var) {
        Ok(v) => engine::duration::parse_duration(&v)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("{var}: {e}")),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(e) => Err(anyhow::anyhow!("{var}: {e}")),
    }
}

/// The host name when it can serve as a node name; else none, and the engine names
/// this run of the node.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| config::valid_node_name(h))
        .unwrap_or_default()
}

/// Knobs for tests and operators that are not part of the stored configuration:
/// `IRONSEAL_TRANSIT_MIN_ROTATE_PERIOD` lowers the floor of `auto_rotate_period`
/// (Vault's is one hour), so schedules can be tested without waiting hours.
fn settings_from_env() -> anyhow::Result<engine::Settings> {
    let mut settings = engine::Settings::default();
    if let Some(min) = env_duration("IRONSEAL_TRANSIT_MIN_ROTATE_PERIOD")? {
        settings.transit.min_auto_rotate_period = min.max(1);
        tracing::warn!(
            seconds = min,
            "transit accepts auto_rotate_period below Vault's one hour"
        );
    }
    Ok(settings)
}

fn housekeeping_period() -> std::time::Duration {
    match env_duration("IRONSEAL_HOUSEKEEPING_INTERVAL") {
        Ok(Some(secs)) => std::time::Duration::from_secs(secs.max(1)),
        Ok(None) => HOUSEKEEPING_PERIOD,
        Err(e) => {
            tracing::warn!(error = %e, "ignoring the housekeeping interval");
            HOUSEKEEPING_PERIOD
        }
    }
}

async fn housekeeping(core: Arc<Core>) {
    let mut every = tokio::time::interval(housekeeping_period());
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        core.tick().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dev_socket_lives_in_the_runtime_dir_else_in_a_private_tmp_dir() {
        assert_eq!(
            default_dev_socket(Some(OsStr::new("/run/user/1000")), 1000),
            Path::new("/run/user/1000/ironseal-pkcs11.sock")
        );
        assert_eq!(
            default_dev_socket(None, 1000),
            Path::new("/tmp/ironseal-1000/pkcs11.sock")
        );
        assert_eq!(
            default_dev_socket(Some(OsStr::new("")), 7),
            Path::new("/tmp/ironseal-7/pkcs11.sock")
        );
    }
}
