//! The SSH transport on russh: one authenticated session per host (optionally reached through
//! ProxyJump hops, each a direct-tcpip channel on the previous hop's session); every exec and
//! tunnel is a new channel on that session.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use russh::client::{self, AuthResult, Handle, KeyboardInteractiveAuthResponse};
use russh::keys::agent::client::AgentClient;
use russh::keys::agent::AgentIdentity;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{ChannelMsg, Disconnect, MethodKind, MethodSet, Sig};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::known_hosts::{fingerprint, host_port_name, KnownHosts, KnownHostsVerdict};
use super::ssh_config::{expand_path, local_user, parse_proxy_jump, SshConfigFile};
use super::tunnel::{ORIGINATOR_ADDRESS, ORIGINATOR_PORT};
use super::{
    ConnectOptions, ExecOutput, HostKeyChecking, PassphrasePrompt, Transport, TransportError,
    Tunnel, C_LOCALE_PREFIX,
};

/// How many unanswered keepalives declare a session dead.
const KEEPALIVE_MAX: usize = 3;
const DEFAULT_IDENTITIES: [&str; 3] = ["id_ed25519", "id_ecdsa", "id_rsa"];

/// Where and as whom to log in, after ssh config resolution.
#[derive(Clone)]
struct Endpoint {
    /// The name used in messages and as extra known_hosts name (inventory alias or hop name).
    label: String,
    host: String,
    port: u16,
    user: String,
    /// In order: explicit, ssh config, defaults (existing files only for the last group).
    identity_files: Vec<(PathBuf, IdentitySource)>,
    password: Option<String>,
    checking: HostKeyChecking,
    known_hosts_files: Vec<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum IdentitySource {
    Explicit,
    Config,
    Default,
}

impl Endpoint {
    fn known_host_names(&self) -> Vec<String> {
        let mut names = vec![host_port_name(&self.host, self.port)];
        let alias = host_port_name(&self.label, self.port);
        if !names.contains(&alias) {
            names.push(alias);
        }
        names
    }

    fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

pub async fn connect(opts: &ConnectOptions) -> Result<Arc<dyn Transport>, TransportError> {
    let config = SshConfigFile::load(opts.ssh_config.as_deref())?;
    let target_config = config.lookup(&opts.alias);
    let default_known_hosts = || -> Vec<PathBuf> {
        match &opts.known_hosts {
            Some(path) => vec![path.clone()],
            None => vec![expand_path("~/.ssh/known_hosts")],
        }
    };
    let known_hosts_for = |configured: &Vec<PathBuf>| -> Vec<PathBuf> {
        if opts.known_hosts.is_none() && !configured.is_empty() {
            configured.clone()
        } else {
            default_known_hosts()
        }
    };

    let mut target_identities: Vec<(PathBuf, IdentitySource)> = opts
        .identity_files
        .iter()
        .map(|p| (p.clone(), IdentitySource::Explicit))
        .collect();
    target_identities.extend(
        target_config
            .identity_files
            .iter()
            .map(|p| (p.clone(), IdentitySource::Config)),
    );
    target_identities.extend(default_identities());

    let target = Endpoint {
        label: opts.alias.clone(),
        host: opts
            .host
            .clone()
            .or(target_config.host_name.clone())
            .unwrap_or_else(|| opts.alias.clone()),
        port: opts.port.or(target_config.port).unwrap_or(22),
        user: opts
            .user
            .clone()
            .or(target_config.user.clone())
            .unwrap_or_else(local_user),
        identity_files: dedup_identities(target_identities),
        password: opts.password.clone(),
        checking: opts
            .host_key_checking
            .or(target_config.strict_host_key_checking)
            .unwrap_or(HostKeyChecking::Strict),
        known_hosts_files: known_hosts_for(&target_config.known_hosts_files),
    };

    let jump_text = opts.proxy_jump.clone().or(target_config.proxy_jump.clone());
    let hops = match jump_text.as_deref() {
        Some(text) if !text.eq_ignore_ascii_case("none") => parse_proxy_jump(text)?,
        _ => Vec::new(),
    };
    // Each hop gets its own ssh config; the explicit key files are tried after the hop's own,
    // since jump hosts usually accept the same key.
    let hop_endpoints: Vec<Endpoint> = hops
        .iter()
        .map(|hop| {
            let hop_config = config.lookup(&hop.host);
            let mut identities: Vec<(PathBuf, IdentitySource)> = hop_config
                .identity_files
                .iter()
                .map(|p| (p.clone(), IdentitySource::Config))
                .collect();
            identities.extend(
                opts.identity_files
                    .iter()
                    .map(|p| (p.clone(), IdentitySource::Config)),
            );
            identities.extend(default_identities());
            Endpoint {
                label: hop.host.clone(),
                host: hop_config
                    .host_name
                    .clone()
                    .unwrap_or_else(|| hop.host.clone()),
                port: hop.port.or(hop_config.port).unwrap_or(22),
                user: hop
                    .user
                    .clone()
                    .or(hop_config.user.clone())
                    .unwrap_or_else(local_user),
                identity_files: dedup_identities(identities),
                password: None,
                checking: opts
                    .host_key_checking
                    .or(hop_config.strict_host_key_checking)
                    .unwrap_or(HostKeyChecking::Strict),
                known_hosts_files: known_hosts_for(&hop_config.known_hosts_files),
            }
        })
        .collect();

    let mut jumps: Vec<Arc<Handle<ClientHandler>>> = Vec::new();
    for hop in &hop_endpoints {
        let handle = match jumps.last() {
            None => {
                let stream = tcp_connect(hop, opts.connect_timeout).await?;
                establish(stream, hop, opts).await
            }
            Some(previous) => {
                let stream = jump_stream(previous, hop, opts.connect_timeout).await?;
                establish(stream, hop, opts).await
            }
        }
        .map_err(|err| in_jump(err, hop))?;
        jumps.push(Arc::new(handle));
    }
    let handle = match jumps.last() {
        None => {
            let stream = tcp_connect(&target, opts.connect_timeout).await?;
            establish(stream, &target, opts).await?
        }
        Some(previous) => {
            let stream = jump_stream(previous, &target, opts.connect_timeout).await?;
            establish(stream, &target, opts).await?
        }
    };
    Ok(Arc::new(SshTransport {
        label: target.label.clone(),
        address: target.address(),
        handle: Arc::new(handle),
        jumps,
        closed: AtomicBool::new(false),
        open_channels: AtomicUsize::new(0),
    }))
}

fn default_identities() -> Vec<(PathBuf, IdentitySource)> {
    let Some(home) = dirs::home_dir() else {
        return Vec::new();
    };
    DEFAULT_IDENTITIES
        .iter()
        .map(|name| home.join(".ssh").join(name))
        .filter(|path| path.is_file())
        .map(|path| (path, IdentitySource::Default))
        .collect()
}

fn dedup_identities(list: Vec<(PathBuf, IdentitySource)>) -> Vec<(PathBuf, IdentitySource)> {
    let mut seen = HashSet::new();
    list.into_iter()
        .filter(|(path, _)| seen.insert(path.clone()))
        .collect()
}

/// Prefixes an error from a jump host so the user knows which hop failed.
fn in_jump(err: TransportError, hop: &Endpoint) -> TransportError {
    let prefix = format!("via ProxyJump host {}: ", hop.label);
    match err {
        TransportError::Unreachable(m) => TransportError::Unreachable(prefix + &m),
        TransportError::HostKey(m) => TransportError::HostKey(prefix + &m),
        TransportError::Auth(m) => TransportError::Auth(prefix + &m),
        TransportError::Timeout(m) => TransportError::Unreachable(prefix + &m),
        TransportError::Other(m) => TransportError::Unreachable(prefix + &m),
    }
}

/// OpenSSH words connection errors without Rust's "(os error N)" suffix.
fn io_message(err: &std::io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error") {
        Some(index) => text[..index].to_string(),
        None => text,
    }
}

async fn tcp_connect(
    endpoint: &Endpoint,
    timeout: Duration,
) -> Result<tokio::net::TcpStream, TransportError> {
    let unreachable = |why: String| {
        TransportError::Unreachable(format!(
            "ssh: connect to host {} port {}: {why}",
            endpoint.host, endpoint.port
        ))
    };
    let deadline = Instant::now() + timeout;
    let lookup = tokio::time::timeout_at(
        deadline,
        tokio::net::lookup_host((endpoint.host.as_str(), endpoint.port)),
    )
    .await
    .map_err(|_| unreachable("Connection timed out".into()))?;
    let addresses: Vec<_> = lookup
        .map_err(|err| {
            let why = io_message(&err);
            let why = why
                .strip_prefix("failed to lookup address information: ")
                .unwrap_or(&why)
                .to_string();
            TransportError::Unreachable(format!(
                "ssh: Could not resolve hostname {}: {why}",
                endpoint.host
            ))
        })?
        .collect();
    let mut last_error = String::from("no address");
    for address in addresses {
        match tokio::time::timeout_at(deadline, tokio::net::TcpStream::connect(address)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(err)) => last_error = io_message(&err),
            Err(_) => return Err(unreachable("Connection timed out".into())),
        }
    }
    Err(unreachable(last_error))
}

async fn jump_stream(
    previous: &Handle<ClientHandler>,
    endpoint: &Endpoint,
    timeout: Duration,
) -> Result<russh::ChannelStream<client::Msg>, TransportError> {
    let open = previous.channel_open_direct_tcpip(
        endpoint.host.clone(),
        u32::from(endpoint.port),
        ORIGINATOR_ADDRESS,
        ORIGINATOR_PORT,
    );
    match tokio::time::timeout(timeout, open).await {
        Ok(Ok(channel)) => Ok(channel.into_stream()),
        Ok(Err(err)) => Err(TransportError::Unreachable(format!(
            "ssh: connect to host {} port {} through the jump host: {err}",
            endpoint.host, endpoint.port
        ))),
        Err(_) => Err(TransportError::Unreachable(format!(
            "ssh: connect to host {} port {} through the jump host: Connection timed out",
            endpoint.host, endpoint.port
        ))),
    }
}

/// SSH handshake (with host key verification) and authentication on an open stream.
async fn establish<S>(
    stream: S,
    endpoint: &Endpoint,
    opts: &ConnectOptions,
) -> Result<Handle<ClientHandler>, TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let config = Arc::new(client::Config {
        keepalive_interval: Some(opts.keepalive),
        keepalive_max: KEEPALIVE_MAX,
        inactivity_timeout: None,
        nodelay: true,
        ..Default::default()
    });
    let handler = ClientHandler {
        endpoint: endpoint.clone(),
    };
    let handshake = client::connect_stream(config, stream, handler);
    let mut handle = match tokio::time::timeout(opts.connect_timeout, handshake).await {
        Ok(Ok(handle)) => handle,
        Ok(Err(HandlerError::HostKey(message))) => return Err(TransportError::HostKey(message)),
        Ok(Err(HandlerError::Ssh(err))) => {
            return Err(TransportError::Unreachable(format!(
                "ssh: handshake with {} failed: {err}",
                endpoint.address()
            )))
        }
        Err(_) => {
            return Err(TransportError::Unreachable(format!(
                "Connection timed out during banner exchange with {}",
                endpoint.address()
            )))
        }
    };
    authenticate(&mut handle, endpoint, opts).await?;
    Ok(handle)
}

#[derive(Debug)]
enum HandlerError {
    Ssh(russh::Error),
    HostKey(String),
}

impl From<russh::Error> for HandlerError {
    fn from(err: russh::Error) -> Self {
        HandlerError::Ssh(err)
    }
}

struct ClientHandler {
    endpoint: Endpoint,
}

impl client::Handler for ClientHandler {
    type Error = HandlerError;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = match server_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(cert) => {
                PublicKey::new(cert.public_key().clone(), "")
            }
        };
        verify_host_key(&self.endpoint, &key).map_err(HandlerError::HostKey)?;
        Ok(true)
    }
}

fn tilde(path: &Path) -> String {
    if let Some(home) = dirs::home_dir() {
        if let Ok(rest) = path.strip_prefix(&home) {
            return format!("~/{}", rest.display());
        }
    }
    path.display().to_string()
}

fn verify_host_key(endpoint: &Endpoint, key: &PublicKey) -> Result<(), String> {
    if endpoint.checking == HostKeyChecking::Off {
        return Ok(());
    }
    let names = endpoint.known_host_names();
    let key_type = key.algorithm().as_str().to_string();
    let new_fingerprint = fingerprint(key);
    let who = format!("{} ({})", endpoint.label, endpoint.address());
    let mut known = false;
    let mut other_types = Vec::new();
    for path in &endpoint.known_hosts_files {
        let file = KnownHosts::load(path)
            .map_err(|err| format!("cannot read known hosts file {}: {err}", tilde(path)))?;
        match file.check(&names, key) {
            KnownHostsVerdict::Known => known = true,
            KnownHostsVerdict::Changed {
                old_fingerprint,
                line,
            } => {
                return Err(format!(
                    "REMOTE HOST IDENTIFICATION HAS CHANGED for {who}: {key_type} key is now \
                     {new_fingerprint}, known_hosts has {old_fingerprint} at {}:{line}. Someone \
                     could be eavesdropping on you; if the host was reinstalled, remove the old \
                     entry (ssh-keygen -R {})",
                    tilde(path),
                    names[0]
                ))
            }
            KnownHostsVerdict::Revoked { line } => {
                return Err(format!(
                    "Host key for {who} ({key_type} {new_fingerprint}) is marked as revoked in \
                     {}:{line}",
                    tilde(path)
                ))
            }
            KnownHostsVerdict::Unknown { other_types: types } => other_types.extend(types),
        }
    }
    if known {
        return Ok(());
    }
    let Some(first_file) = endpoint.known_hosts_files.first() else {
        return Err(format!(
            "Host key for {who} cannot be checked: no known_hosts file"
        ));
    };
    match endpoint.checking {
        HostKeyChecking::Off => Ok(()),
        HostKeyChecking::AcceptNew => KnownHosts::append(first_file, &names, key).map_err(|err| {
            format!(
                "cannot record the host key of {who} in {}: {err}",
                tilde(first_file)
            )
        }),
        HostKeyChecking::Strict => {
            let others = if other_types.is_empty() {
                String::new()
            } else {
                format!(
                    " (known_hosts has only {} keys for it)",
                    other_types.join(", ")
                )
            };
            Err(format!(
                "Host key for {who} is not known{others}: server offered {key_type} \
                 {new_fingerprint}. Add it to {} (e.g. ssh-keyscan) or use --host-key-checking \
                 accept-new",
                tilde(first_file)
            ))
        }
    }
}

fn method_names(methods: &MethodSet) -> String {
    methods
        .iter()
        .map(<&'static str>::from)
        .collect::<Vec<_>>()
        .join(",")
}

/// Agent keys, then identity files, then password (or keyboard-interactive with the password),
/// like OpenSSH's default order.
async fn authenticate(
    handle: &mut Handle<ClientHandler>,
    endpoint: &Endpoint,
    opts: &ConnectOptions,
) -> Result<(), TransportError> {
    let step_timeout = opts.connect_timeout.max(Duration::from_secs(5));
    let user = endpoint.user.as_str();
    let who = format!("{user}@{}", endpoint.host);
    let lost = |err: String| {
        TransportError::Unreachable(format!(
            "{who}: connection lost during authentication: {err}"
        ))
    };
    let timed_out = || TransportError::Unreachable(format!("{who}: authentication timed out"));

    // "none" tells us which methods the server accepts (for the Permission denied text).
    let mut server_methods =
        match tokio::time::timeout(step_timeout, handle.authenticate_none(user))
            .await
            .map_err(|_| timed_out())?
            .map_err(|e| lost(e.to_string()))?
        {
            AuthResult::Success => return Ok(()),
            AuthResult::Failure {
                remaining_methods, ..
            } => remaining_methods,
        };
    let mut tried: Vec<String> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut rsa_hash: Option<Option<HashAlg>> = None;
    let mut offered_keys: HashSet<Vec<u8>> = HashSet::new();

    if server_methods.contains(&MethodKind::PublicKey) {
        if let Ok(socket) = std::env::var("SSH_AUTH_SOCK") {
            match AgentClient::connect_uds(&socket).await {
                Ok(mut agent) => {
                    let identities = match agent.request_identities().await {
                        Ok(list) => list,
                        Err(err) => {
                            notes.push(format!("ssh-agent: {err}"));
                            Vec::new()
                        }
                    };
                    for identity in identities {
                        let AgentIdentity::PublicKey { key, comment } = identity else {
                            continue; // certificates are not supported
                        };
                        let hash = if key.algorithm().is_rsa() {
                            best_rsa_hash(handle, &mut rsa_hash).await
                        } else {
                            None
                        };
                        offered_keys.insert(key.key_data().encode_vec_lossy());
                        tried.push(format!("agent key {comment}").trim().to_string());
                        let attempt =
                            handle.authenticate_publickey_with(user, key.clone(), hash, &mut agent);
                        match tokio::time::timeout(step_timeout, attempt).await {
                            Err(_) => return Err(timed_out()),
                            Ok(Ok(AuthResult::Success)) => return Ok(()),
                            Ok(Ok(AuthResult::Failure {
                                remaining_methods, ..
                            })) => {
                                if !remaining_methods.is_empty() {
                                    server_methods = remaining_methods;
                                }
                            }
                            Ok(Err(err)) => notes.push(format!("ssh-agent signing: {err}")),
                        }
                        if handle.is_closed() {
                            return Err(lost("server closed the connection".into()));
                        }
                    }
                }
                Err(err) => notes.push(format!("ssh-agent at {socket}: {err}")),
            }
        }

        for (path, source) in &endpoint.identity_files {
            if !server_methods.contains(&MethodKind::PublicKey) {
                break;
            }
            if !path.is_file() {
                if *source != IdentitySource::Default {
                    notes.push(format!("no such identity: {}", tilde(path)));
                }
                continue;
            }
            let key = match load_identity(path, opts.passphrase.as_ref()).await {
                Ok(key) => key,
                Err(why) => {
                    notes.push(why);
                    continue;
                }
            };
            if !offered_keys.insert(key.public_key().key_data().encode_vec_lossy()) {
                continue; // already offered through the agent
            }
            let hash = if key.algorithm().is_rsa() {
                best_rsa_hash(handle, &mut rsa_hash).await
            } else {
                None
            };
            tried.push(tilde(path));
            let attempt = handle
                .authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::new(key), hash));
            match tokio::time::timeout(step_timeout, attempt).await {
                Err(_) => return Err(timed_out()),
                Ok(Ok(AuthResult::Success)) => return Ok(()),
                Ok(Ok(AuthResult::Failure {
                    remaining_methods, ..
                })) => {
                    if !remaining_methods.is_empty() {
                        server_methods = remaining_methods;
                    }
                }
                Ok(Err(err)) => return Err(lost(err.to_string())),
            }
        }
    }

    if let Some(password) = &endpoint.password {
        if server_methods.contains(&MethodKind::Password) {
            tried.push("password".into());
            let attempt = handle.authenticate_password(user, password.clone());
            match tokio::time::timeout(step_timeout, attempt)
                .await
                .map_err(|_| timed_out())?
                .map_err(|e| lost(e.to_string()))?
            {
                AuthResult::Success => return Ok(()),
                AuthResult::Failure {
                    remaining_methods, ..
                } => {
                    if !remaining_methods.is_empty() {
                        server_methods = remaining_methods;
                    }
                }
            }
        } else if server_methods.contains(&MethodKind::KeyboardInteractive) {
            tried.push("keyboard-interactive".into());
            let outcome =
                tokio::time::timeout(step_timeout, keyboard_interactive(handle, user, password))
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(|e| lost(e.to_string()))?;
            if outcome {
                return Ok(());
            }
        }
    }

    let mut message = format!(
        "{who}: Permission denied ({}).",
        method_names(&server_methods)
    );
    if tried.is_empty() {
        message.push_str(" No credentials to try");
    } else {
        message.push_str(&format!(" Tried: {}", tried.join(", ")));
    }
    if !notes.is_empty() {
        message.push_str(&format!(" ({})", notes.join("; ")));
    }
    Err(TransportError::Auth(message))
}

async fn best_rsa_hash(
    handle: &Handle<ClientHandler>,
    cache: &mut Option<Option<HashAlg>>,
) -> Option<HashAlg> {
    if let Some(cached) = cache {
        return *cached;
    }
    // rsa-sha2-256/512 whenever the server supports them; SHA-1 only as a last resort.
    let hash = match handle.best_supported_rsa_hash().await {
        Ok(Some(hash)) => hash,
        _ => Some(HashAlg::Sha256),
    };
    *cache = Some(hash);
    hash
}

async fn load_identity(
    path: &Path,
    passphrase: Option<&PassphrasePrompt>,
) -> Result<russh::keys::PrivateKey, String> {
    match russh::keys::load_secret_key(path, None) {
        Ok(key) => Ok(key),
        Err(russh::keys::Error::KeyIsEncrypted) => {
            let Some(prompt) = passphrase.cloned() else {
                return Err(format!(
                    "{} is encrypted and no passphrase prompt is available",
                    tilde(path)
                ));
            };
            let owned = path.to_path_buf();
            // The prompt may block on the terminal: keep it off the async workers.
            let answer = tokio::task::spawn_blocking(move || prompt(&owned))
                .await
                .map_err(|err| format!("passphrase prompt failed: {err}"))?;
            let Some(answer) = answer else {
                return Err(format!("no passphrase given for {}", tilde(path)));
            };
            russh::keys::load_secret_key(path, Some(&answer))
                .map_err(|err| format!("cannot decrypt {}: {err}", tilde(path)))
        }
        Err(err) => Err(format!("cannot load {}: {err}", tilde(path))),
    }
}

/// Answers every keyboard-interactive prompt with the password (servers with
/// PasswordAuthentication off but PAM conversations on).
async fn keyboard_interactive(
    handle: &mut Handle<ClientHandler>,
    user: &str,
    password: &str,
) -> Result<bool, russh::Error> {
    let mut response = handle
        .authenticate_keyboard_interactive_start(user, None::<String>)
        .await?;
    for _round in 0..5 {
        match response {
            KeyboardInteractiveAuthResponse::Success => return Ok(true),
            KeyboardInteractiveAuthResponse::Failure { .. } => return Ok(false),
            KeyboardInteractiveAuthResponse::InfoRequest { prompts, .. } => {
                let answers = prompts.iter().map(|_| password.to_string()).collect();
                response = handle
                    .authenticate_keyboard_interactive_respond(answers)
                    .await?;
            }
        }
    }
    Ok(false)
}

trait EncodeVecLossy {
    fn encode_vec_lossy(&self) -> Vec<u8>;
}

impl EncodeVecLossy for russh::keys::ssh_key::public::KeyData {
    /// The key blob, used to recognise the same key offered twice.
    fn encode_vec_lossy(&self) -> Vec<u8> {
        use russh::keys::ssh_encoding::Encode;
        self.encode_vec().unwrap_or_default()
    }
}

struct SshTransport {
    label: String,
    address: String,
    handle: Arc<Handle<ClientHandler>>,
    /// Jump host sessions carry the target's stream: kept alive as long as the target session.
    jumps: Vec<Arc<Handle<ClientHandler>>>,
    closed: AtomicBool,
    /// exec calls holding or opening a session channel.
    open_channels: AtomicUsize,
}

/// Counts a held channel for as long as it lives.
struct ChannelSlot<'a>(&'a AtomicUsize);

impl<'a> ChannelSlot<'a> {
    fn take(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        ChannelSlot(counter)
    }
}

impl Drop for ChannelSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl SshTransport {
    fn connection_lost(&self) -> TransportError {
        TransportError::Unreachable(format!(
            "Shared connection to {} ({}) closed.",
            self.label, self.address
        ))
    }

    fn check_open(&self) -> Result<(), TransportError> {
        if self.closed.load(Ordering::SeqCst) || self.handle.is_closed() {
            return Err(self.connection_lost());
        }
        Ok(())
    }

    fn channel_error(&self, err: russh::Error) -> TransportError {
        if self.handle.is_closed() {
            self.connection_lost()
        } else {
            TransportError::Other(format!("ssh channel on {}: {err}", self.label))
        }
    }
}

impl SshTransport {
    /// Opens a session channel. sshd refuses channels beyond its MaxSessions (OpenSSH default
    /// 10): such opens wait for a slot instead of failing, which lets callers run more
    /// concurrent commands than the server allows channels.
    async fn open_session_channel(&self) -> Result<russh::Channel<client::Msg>, TransportError> {
        let mut pause = Duration::from_millis(20);
        loop {
            match self.handle.channel_open_session().await {
                Ok(channel) => return Ok(channel),
                // OpenSSH answers "connect failed" when MaxSessions is reached. When no other
                // exec of ours holds or awaits a channel, no slot will free up: a real refusal.
                Err(russh::Error::ChannelOpenFailure(
                    russh::ChannelOpenFailure::AdministrativelyProhibited
                    | russh::ChannelOpenFailure::ConnectFailed
                    | russh::ChannelOpenFailure::ResourceShortage,
                )) if self.open_channels.load(Ordering::SeqCst) > 1 => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
                Err(err) => return Err(self.channel_error(err)),
            }
        }
    }
}

/// Maps an SSH exit-signal name to `128 + signal number` as a shell would report it.
fn signal_rc(signal: &Sig) -> i32 {
    let number = match signal {
        Sig::HUP => 1,
        Sig::INT => 2,
        Sig::QUIT => 3,
        Sig::ILL => 4,
        Sig::ABRT => 6,
        Sig::FPE => 8,
        Sig::KILL => 9,
        Sig::USR1 => 10,
        Sig::SEGV => 11,
        Sig::PIPE => 13,
        Sig::ALRM => 14,
        Sig::TERM => 15,
        Sig::Custom(_) => 127,
    };
    128 + number
}

#[async_trait::async_trait]
impl Transport for SshTransport {
    async fn exec(
        &self,
        command: &str,
        stdin: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<ExecOutput, TransportError> {
        self.check_open()?;
        let deadline = Instant::now() + timeout;
        let timed_out = || {
            TransportError::Timeout(format!(
                "command timed out after {}s on {}",
                timeout.as_secs_f64(),
                self.label
            ))
        };
        let _slot = ChannelSlot::take(&self.open_channels);
        let channel = tokio::time::timeout_at(deadline, self.open_session_channel())
            .await
            .map_err(|_| timed_out())??;
        let (mut reader, writer) = channel.split();
        let full_command = format!("{C_LOCALE_PREFIX}{command}");
        writer
            .exec(true, full_command.into_bytes())
            .await
            .map_err(|err| self.channel_error(err))?;

        let feed = async {
            if let Some(bytes) = &stdin {
                writer.data(&bytes[..]).await?;
            }
            writer.eof().await
        };
        let collect = async {
            let mut output = ExecOutput::default();
            let mut status: Option<i32> = None;
            let mut refused = false;
            while let Some(message) = reader.wait().await {
                match message {
                    ChannelMsg::Data { data } => output.stdout.extend_from_slice(&data),
                    ChannelMsg::ExtendedData { data, ext: 1 } => {
                        output.stderr.extend_from_slice(&data)
                    }
                    ChannelMsg::ExitStatus { exit_status } => {
                        status = Some(i32::try_from(exit_status).unwrap_or(255))
                    }
                    ChannelMsg::ExitSignal { signal_name, .. } => {
                        status = Some(signal_rc(&signal_name))
                    }
                    ChannelMsg::Failure => refused = true,
                    ChannelMsg::Close => break,
                    _ => {}
                }
            }
            (output, status, refused)
        };
        tokio::pin!(feed);
        tokio::pin!(collect);
        let mut feed_done = false;
        let outcome = loop {
            tokio::select! {
                // A command that exits without reading stdin makes the write fail: not an error.
                _ = &mut feed, if !feed_done => feed_done = true,
                result = &mut collect => break Some(result),
                () = tokio::time::sleep_until(deadline) => break None,
            }
        };
        let Some((mut output, status, refused)) = outcome else {
            // Best effort: sshd (OpenSSH >= 7.9) delivers the signal; closing frees the channel.
            let _ = writer.signal(Sig::KILL).await;
            let _ = writer.close().await;
            return Err(timed_out());
        };
        if refused && status.is_none() {
            return Err(TransportError::Other(format!(
                "{} refused to run the command (exec request failed)",
                self.label
            )));
        }
        match status {
            Some(rc) => {
                output.rc = rc;
                Ok(output)
            }
            None if self.handle.is_closed() || self.closed.load(Ordering::SeqCst) => {
                Err(self.connection_lost())
            }
            None => Err(TransportError::Other(format!(
                "command on {} ended without an exit status",
                self.label
            ))),
        }
    }

    async fn open_tunnel(&self, host: &str, port: u16) -> Result<Box<dyn Tunnel>, TransportError> {
        self.check_open()?;
        let channel = self
            .handle
            .channel_open_direct_tcpip(
                host.to_string(),
                u32::from(port),
                ORIGINATOR_ADDRESS,
                ORIGINATOR_PORT,
            )
            .await
            .map_err(|err| {
                if self.handle.is_closed() {
                    self.connection_lost()
                } else {
                    TransportError::Other(format!(
                        "cannot open a tunnel to {host}:{port} on {}: {err}",
                        self.label
                    ))
                }
            })?;
        Ok(Box::new(channel.into_stream()))
    }

    async fn close(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let _ = self
            .handle
            .disconnect(Disconnect::ByApplication, "", "en")
            .await;
        for jump in self.jumps.iter().rev() {
            let _ = jump.disconnect(Disconnect::ByApplication, "", "en").await;
        }
    }
}
