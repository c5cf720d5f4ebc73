//! A small Authentik REST client for the modules that run on the controller.
//!
//! Transport: by default HTTP/1.1 through an SSH `direct-tcpip` tunnel to `127.0.0.1:9000` on the
//! Authentik host (no port needs to be published to the controller); with `authentik_url`, directly
//! over HTTP or HTTPS (rustls, the system trust store plus `ca_path`, or no verification with
//! `validate_certs: false`). One connection per task, kept alive between the calls of that task.
//!
//! The API token comes from the `token` argument or from the host's compose `.env`
//! (`env_file_path`, key `token_key`), read with one remote command whose output never leaves the
//! module. It is sent only in the `Authorization` header and listed as a secret in results.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio_rustls::rustls;

use super::version::{AuthentikVersion, Features};
use crate::modules::remote::quote;
use crate::modules::{Arg, Args, ModuleError, TaskEnv};
use crate::transport::Tunnel;

/// Arguments every Authentik module accepts (how to reach the API and authenticate).
pub const CONNECTION_ARGS: &[Arg] = &[
    Arg::opt("authentik_url"),
    Arg::opt("authentik_host"),
    Arg::opt("api_host"),
    Arg::opt("api_port"),
    Arg::opt("token"),
    Arg::opt("env_file_path"),
    Arg::opt("token_key"),
    Arg::opt("validate_certs"),
    Arg::opt("ca_path"),
    Arg::opt("timeout"),
];

const DEFAULT_TOKEN_KEY: &str = "AUTHENTIK_BOOTSTRAP_TOKEN";
const DEFAULT_API_HOST: &str = "127.0.0.1";
const DEFAULT_API_PORT: u16 = 9000;
const DEFAULT_TIMEOUT_SECS: u64 = 30;
/// Authentik's default page size is 100; lists are followed page by page up to this many pages.
const MAX_PAGES: u32 = 100;

/// Where the API is.
#[derive(Clone, Debug, PartialEq)]
pub enum Endpoint {
    /// Through the task host's SSH session to `host:port` as seen from that host.
    Tunnel { host: String, port: u16 },
    /// Straight from the controller.
    Direct {
        https: bool,
        host: String,
        port: u16,
        /// Path prefix when Authentik is served below a path (no trailing slash).
        base_path: String,
        validate_certs: bool,
        ca_path: Option<String>,
    },
}

impl Endpoint {
    fn describe(&self) -> String {
        match self {
            Endpoint::Tunnel { host, port } => {
                format!("{host}:{port} on the Authentik host (through its SSH session)")
            }
            Endpoint::Direct {
                https, host, port, ..
            } => format!("{}://{host}:{port}", if *https { "https" } else { "http" }),
        }
    }

    fn host_header(&self) -> String {
        match self {
            Endpoint::Tunnel { host, port } => format!("{host}:{port}"),
            Endpoint::Direct {
                https, host, port, ..
            } => {
                if (*https && *port == 443) || (!*https && *port == 80) {
                    host.clone()
                } else {
                    format!("{host}:{port}")
                }
            }
        }
    }

    fn base_path(&self) -> &str {
        match self {
            Endpoint::Tunnel { .. } => "",
            Endpoint::Direct { base_path, .. } => base_path,
        }
    }
}

/// Where the token is.
#[derive(Clone, Debug, PartialEq)]
pub enum TokenSource {
    Given(String),
    EnvFile { path: String, key: String },
}

/// The connection arguments of a task, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectionOptions {
    pub endpoint: Endpoint,
    pub token: TokenSource,
    pub timeout: Duration,
    /// The public hostname (and port, if not 443) users and PVE nodes reach Authentik at: issuer URLs.
    pub public_host: Option<String>,
}

impl ConnectionOptions {
    pub fn from_args(args: &Args) -> Result<ConnectionOptions, ModuleError> {
        let timeout = match args.int("timeout")? {
            Some(secs) if secs > 0 => Duration::from_secs(secs as u64),
            Some(secs) => {
                return Err(ModuleError::msg(format!(
                    "timeout must be a positive number of seconds, got {secs}"
                )))
            }
            None => Duration::from_secs(DEFAULT_TIMEOUT_SECS),
        };
        let validate_certs = args.bool("validate_certs", true)?;
        let ca_path = args.str("ca_path")?;
        let (endpoint, url_host) = match args.str("authentik_url")? {
            Some(raw) => {
                let (endpoint, host) = parse_direct_url(&raw, validate_certs, ca_path)?;
                (endpoint, Some(host))
            }
            None => {
                let port = match args.int("api_port")? {
                    Some(p) if (1..=65535).contains(&p) => p as u16,
                    Some(p) => {
                        return Err(ModuleError::msg(format!("api_port {p} is not a TCP port")))
                    }
                    None => DEFAULT_API_PORT,
                };
                let host = args
                    .str("api_host")?
                    .unwrap_or_else(|| DEFAULT_API_HOST.to_string());
                (Endpoint::Tunnel { host, port }, None)
            }
        };
        let token = match (args.str("token")?, args.str("env_file_path")?) {
            (Some(token), _) if !token.trim().is_empty() => TokenSource::Given(token.trim().to_string()),
            (Some(_), None) => {
                return Err(ModuleError::msg(
                    "the token argument is empty: give the Authentik API token (e.g. AUTHENTIK_BOOTSTRAP_TOKEN) \
                     or env_file_path to read it from the host's .env",
                ))
            }
            (_, Some(path)) => {
                let key = args
                    .str("token_key")?
                    .unwrap_or_else(|| DEFAULT_TOKEN_KEY.to_string());
                if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    return Err(ModuleError::msg(format!(
                        "token_key must be an environment variable name, got {key:?}"
                    )));
                }
                TokenSource::EnvFile { path, key }
            }
            (None, None) => {
                return Err(ModuleError::msg(
                    "no API token: give token (e.g. from a variable) or env_file_path (the Authentik host's compose \
                     .env holding AUTHENTIK_BOOTSTRAP_TOKEN)",
                ))
            }
        };
        let public_host = args
            .str("authentik_host")?
            .map(|h| h.trim().trim_end_matches('/').to_string())
            .filter(|h| !h.is_empty())
            .or(url_host);
        Ok(ConnectionOptions {
            endpoint,
            token,
            timeout,
            public_host,
        })
    }
}

/// `authentik_url` → endpoint, plus the `host[:port]` it names (the issuer host unless `authentik_host`).
fn parse_direct_url(
    raw: &str,
    validate_certs: bool,
    ca_path: Option<String>,
) -> Result<(Endpoint, String), ModuleError> {
    let url = url::Url::parse(raw.trim())
        .map_err(|e| ModuleError::msg(format!("authentik_url {raw:?} is not a URL: {e}")))?;
    let https = match url.scheme() {
        "https" => true,
        "http" => false,
        other => {
            return Err(ModuleError::msg(format!(
                "authentik_url must be http:// or https://, got {other}://"
            )))
        }
    };
    let host = url
        .host_str()
        .ok_or_else(|| ModuleError::msg(format!("authentik_url {raw:?} has no host")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = url
        .port_or_known_default()
        .unwrap_or(if https { 443 } else { 80 });
    let shown_host = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    let base_path = url.path().trim_end_matches('/').to_string();
    Ok((
        Endpoint::Direct {
            https,
            host,
            port,
            base_path,
            validate_certs,
            ca_path,
        },
        shown_host,
    ))
}

/// One API answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

/// A connected, authenticated client that knows the Authentik release.
pub struct Client {
    options: ConnectionOptions,
    token: String,
    tls: Option<tokio_rustls::TlsConnector>,
    sender: Option<SendRequest<Full<Bytes>>>,
    pub version: AuthentikVersion,
    pub features: Features,
}

impl Client {
    /// Reads the token (at most one remote command), connects, and detects the release.
    pub async fn connect(env: &dyn TaskEnv, args: &Args) -> Result<Client, ModuleError> {
        let options = ConnectionOptions::from_args(args)?;
        let token = match &options.token {
            TokenSource::Given(token) => token.clone(),
            TokenSource::EnvFile { path, key } => read_token(env, path, key).await?,
        };
        let tls = match &options.endpoint {
            Endpoint::Direct {
                https: true,
                validate_certs,
                ca_path,
                ..
            } => Some(tls_connector(*validate_certs, ca_path.as_deref())?),
            _ => None,
        };
        let mut client = Client {
            options,
            token,
            tls,
            sender: None,
            version: AuthentikVersion {
                year: 0,
                minor: 0,
                patch: 0,
                text: String::new(),
            },
            features: Features {
                key_type_field: "key_type",
                redirect_uri_type: false,
                generate_alg: true,
                generate_name_unique: true,
                newer_than_known: false,
            },
        };
        let reply = client
            .call(env, Method::GET, "/api/v3/admin/version/", None)
            .await?;
        let text = reply
            .body
            .get("version_current")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        client.version = AuthentikVersion::parse(&text).ok_or_else(|| {
            ModuleError::msg(format!(
                "cannot tell the Authentik release: /api/v3/admin/version/ gave version_current {text:?}"
            ))
        })?;
        client.features = Features::for_version(&client.version).map_err(ModuleError::msg)?;
        Ok(client)
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn public_host(&self) -> Option<&str> {
        self.options.public_host.as_deref()
    }

    /// Result keys every module returns: the release and any warning about it.
    pub fn version_keys(&self, result: &mut serde_json::Map<String, Value>) {
        result.insert("authentik_version".into(), json!(self.version.text));
        if let Some(warning) = self.features.warning(&self.version) {
            result.insert("warnings".into(), json!([warning]));
        }
    }

    /// The secrets a module must declare (`SECRETS_KEY`): the token, plus the given values.
    pub fn secrets(&self, more: &[&str]) -> Value {
        let mut all = vec![Value::String(self.token.clone())];
        all.extend(
            more.iter()
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_string())),
        );
        Value::Array(all)
    }

    /// A request that must answer 2xx; its JSON body (Null when empty).
    pub async fn call(
        &mut self,
        env: &dyn TaskEnv,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, ModuleError> {
        let reply = self.send(env, method.clone(), path, body).await?;
        if (200..300).contains(&reply.status) {
            Ok(reply)
        } else {
            Err(ModuleError::msg(api_failure(&method, path, &reply)))
        }
    }

    /// GET that may answer 404 (None).
    pub async fn get_optional(
        &mut self,
        env: &dyn TaskEnv,
        path: &str,
    ) -> Result<Option<Value>, ModuleError> {
        let reply = self.send(env, Method::GET, path, None).await?;
        match reply.status {
            404 => Ok(None),
            200..=299 => Ok(Some(reply.body)),
            _ => Err(ModuleError::msg(api_failure(&Method::GET, path, &reply))),
        }
    }

    /// The first object of a filtered list (`?name=...`), if any.
    pub async fn find_first(
        &mut self,
        env: &dyn TaskEnv,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<Option<Value>, ModuleError> {
        let reply = self
            .call(env, Method::GET, &with_query(path, params), None)
            .await?;
        Ok(results_of(&reply.body)?.into_iter().next())
    }

    /// The object of a list whose `field` equals `value` exactly (the server-side filter is only a
    /// hint: an ignored filter must not select the wrong object).
    pub async fn find_by(
        &mut self,
        env: &dyn TaskEnv,
        path: &str,
        field: &str,
        value: &str,
    ) -> Result<Option<Value>, ModuleError> {
        let all = self.list_all(env, path, &[(field, value)]).await?;
        Ok(all
            .into_iter()
            .find(|item| item.get(field).and_then(super::scalar_text).as_deref() == Some(value)))
    }

    /// Every object of a list, following Authentik's pagination (`pagination.next`, 0 at the end).
    pub async fn list_all(
        &mut self,
        env: &dyn TaskEnv,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<Vec<Value>, ModuleError> {
        let mut all = Vec::new();
        let mut page = 1u32;
        loop {
            let page_text = page.to_string();
            let mut query: Vec<(&str, &str)> = params.to_vec();
            query.push(("page", &page_text));
            query.push(("page_size", "100"));
            let reply = self
                .call(env, Method::GET, &with_query(path, &query), None)
                .await?;
            all.extend(results_of(&reply.body)?);
            let next = reply
                .body
                .pointer("/pagination/next")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            if next == 0 || page >= MAX_PAGES {
                return Ok(all);
            }
            page = next as u32;
        }
    }

    /// One HTTP exchange; reconnects once when the kept-alive connection was closed.
    async fn send(
        &mut self,
        env: &dyn TaskEnv,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, ModuleError> {
        let payload =
            match body {
                Some(v) => Bytes::from(serde_json::to_vec(v).map_err(|e| {
                    ModuleError::msg(format!("cannot encode the request body: {e}"))
                })?),
                None => Bytes::new(),
            };
        let timeout = self.options.timeout;
        let exchange = async {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let request = self.request(&method, path, body.is_some(), payload.clone())?;
                let sender = self.ready_sender(env).await?;
                match sender.send_request(request).await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let bytes = response
                            .into_body()
                            .collect()
                            .await
                            .map_err(|e| {
                                ModuleError::msg(format!(
                                    "reading Authentik's answer to {method} {path} failed: {e}"
                                ))
                            })?
                            .to_bytes();
                        return Ok(Reply {
                            status,
                            body: parse_body(&bytes),
                        });
                    }
                    // The server may close an idle kept-alive connection; retry once on a fresh one.
                    Err(err) if attempt == 1 && (err.is_closed() || err.is_canceled()) => {
                        self.sender = None;
                    }
                    Err(err) => {
                        self.sender = None;
                        return Err(ModuleError::msg(format!(
                            "{method} {path} to Authentik at {} failed: {err}",
                            self.options.endpoint.describe()
                        )));
                    }
                }
            }
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => {
                self.sender = None;
                Err(ModuleError::msg(format!(
                    "Authentik at {} did not answer {method} {path} within {}s",
                    self.options.endpoint.describe(),
                    timeout.as_secs()
                )))
            }
        }
    }

    fn request(
        &self,
        method: &Method,
        path: &str,
        has_body: bool,
        payload: Bytes,
    ) -> Result<Request<Full<Bytes>>, ModuleError> {
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", self.options.endpoint.base_path()))
            .header(hyper::header::HOST, self.options.endpoint.host_header())
            .header(hyper::header::ACCEPT, "application/json")
            .header(
                hyper::header::AUTHORIZATION,
                format!("Bearer {}", self.token),
            )
            .header(hyper::header::USER_AGENT, "orch");
        if has_body {
            builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        // The error never contains the header values (it names the failing part only).
        builder
            .body(Full::new(payload))
            .map_err(|e| ModuleError::msg(format!("cannot build the request for {path}: {e}")))
    }

    /// The open connection, or a new one.
    async fn ready_sender(
        &mut self,
        env: &dyn TaskEnv,
    ) -> Result<&mut SendRequest<Full<Bytes>>, ModuleError> {
        let usable = match self.sender.as_mut() {
            Some(sender) if !sender.is_closed() => sender.ready().await.is_ok(),
            _ => false,
        };
        if !usable {
            let stream = self.open_stream(env).await?;
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| {
                    ModuleError::msg(format!(
                        "HTTP handshake with Authentik at {} failed: {e}",
                        self.options.endpoint.describe()
                    ))
                })?;
            // Drives the connection; ends when the sender is dropped or the peer closes.
            tokio::spawn(async move {
                let _ = connection.await;
            });
            self.sender = Some(sender);
        }
        self.sender
            .as_mut()
            .ok_or_else(|| ModuleError::msg("no connection to Authentik"))
    }

    /// The SHA-256 fingerprint (Authentik's lowercase colon-separated form) of the certificate
    /// Authentik's HTTPS listener on `https_port` presents for `server_name` (SNI), reached the same
    /// way as the API. The certificate is only read, not verified: this asks which one is served.
    pub async fn served_certificate(
        &self,
        env: &dyn TaskEnv,
        https_port: u16,
        server_name: &str,
    ) -> Result<String, ModuleError> {
        let (stream, at): (Box<dyn Tunnel>, String) = match &self.options.endpoint {
            Endpoint::Tunnel { host, .. } => (
                env.open_tunnel(host, https_port).await?,
                format!("{host}:{https_port} on the Authentik host"),
            ),
            Endpoint::Direct { host, .. } => (
                Box::new(
                    tokio::net::TcpStream::connect((host.as_str(), https_port))
                        .await
                        .map_err(|e| ModuleError::msg(format!("{host}:{https_port}: {e}")))?,
                ),
                format!("{host}:{https_port}"),
            ),
        };
        let name =
            rustls::pki_types::ServerName::try_from(server_name.to_string()).map_err(|e| {
                ModuleError::msg(format!("{server_name} is not a valid TLS server name: {e}"))
            })?;
        let tls = tls_connector(false, None)?
            .connect(name, stream)
            .await
            .map_err(|e| ModuleError::msg(format!("TLS handshake with {at} failed: {e}")))?;
        let leaf = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .ok_or_else(|| ModuleError::msg(format!("{at} presented no certificate")))?;
        Ok(super::given_pair::authentik_fingerprint(
            &crate::modules::tls::x509::fingerprint_sha256(leaf.as_ref()),
        ))
    }

    async fn open_stream(&self, env: &dyn TaskEnv) -> Result<Box<dyn Tunnel>, ModuleError> {
        match &self.options.endpoint {
            Endpoint::Tunnel { host, port } => match env.open_tunnel(host, *port).await {
                Ok(stream) => Ok(stream),
                Err(ModuleError::Failed { msg, result }) => Err(ModuleError::with_result(
                    format!(
                        "cannot reach Authentik at {host}:{port} on the Authentik host: {msg}. Is it running \
                         (docker compose ps) and published on that port (COMPOSE_PORT_HTTP)?"
                    ),
                    result,
                )),
                Err(other) => Err(other),
            },
            Endpoint::Direct {
                https, host, port, ..
            } => {
                let tcp = tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(|e| {
                        ModuleError::msg(format!("cannot connect to Authentik at {host}:{port}: {e}"))
                    })?;
                if !*https {
                    return Ok(Box::new(tcp));
                }
                let connector = self
                    .tls
                    .as_ref()
                    .ok_or_else(|| ModuleError::msg("TLS is not set up"))?;
                let server_name = rustls::pki_types::ServerName::try_from(host.clone())
                    .map_err(|e| ModuleError::msg(format!("{host} is not a valid TLS server name: {e}")))?;
                let tls = connector.connect(server_name, tcp).await.map_err(|e| {
                    ModuleError::msg(format!(
                        "TLS with Authentik at {host}:{port} failed: {e}. If Authentik uses a private CA, give \
                         ca_path (a PEM file on the controller); validate_certs: false skips verification"
                    ))
                })?;
                Ok(Box::new(tls))
            }
        }
    }
}

/// Reads one key of the host's compose `.env` with a single remote command.
async fn read_token(env: &dyn TaskEnv, path: &str, key: &str) -> Result<String, ModuleError> {
    let script = format!(
        "f={}\nif [ ! -e \"$f\" ]; then echo 'orch: no such file' >&2; exit 3; fi\n\
         grep -E '^[[:space:]]*(export[[:space:]]+)?{key}=' \"$f\" | tail -n 1",
        quote(path)
    );
    let out = env.run(&script, None).await?;
    if out.rc == 3 {
        return Err(ModuleError::msg(format!(
            "{path} does not exist on the Authentik host: set env_file_path to the compose .env (or give token)"
        )));
    }
    if out.rc > 1 {
        return Err(ModuleError::msg(format!(
            "cannot read {path} on the Authentik host (rc={}): {}",
            out.rc,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let line = String::from_utf8_lossy(&out.stdout);
    parse_env_value(&line, key).ok_or_else(|| {
        ModuleError::msg(format!(
            "{path} on the Authentik host has no {key}: the API token is needed (or give token)"
        ))
    })
}

/// The value of `KEY=value` (optionally `export `-prefixed and quoted) in a `.env` line.
pub fn parse_env_value(line: &str, key: &str) -> Option<String> {
    let line = line.trim();
    let line = line
        .strip_prefix("export")
        .map(str::trim_start)
        .unwrap_or(line);
    let value = line.strip_prefix(key)?.strip_prefix('=')?.trim();
    let unquoted = if value.len() >= 2
        && ((value.starts_with('"') && value.ends_with('"'))
            || (value.starts_with('\'') && value.ends_with('\'')))
    {
        &value[1..value.len() - 1]
    } else {
        value
    };
    (!unquoted.is_empty()).then(|| unquoted.to_string())
}

fn tls_connector(
    validate_certs: bool,
    ca_path: Option<&str>,
) -> Result<tokio_rustls::TlsConnector, ModuleError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ModuleError::msg(format!("TLS setup failed: {e}")))?;
    let mut config = if validate_certs {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        if let Some(path) = ca_path {
            use rustls::pki_types::pem::PemObject;
            let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| ModuleError::msg(format!("cannot read ca_path {path}: {e}")))?;
            let mut added = 0;
            for cert in certs {
                let cert = cert.map_err(|e| ModuleError::msg(format!("ca_path {path}: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| ModuleError::msg(format!("ca_path {path}: {e}")))?;
                added += 1;
            }
            if added == 0 {
                return Err(ModuleError::msg(format!(
                    "ca_path {path} holds no PEM certificate"
                )));
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// `validate_certs: false`: any certificate is accepted (signatures are still checked for form).
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `path?k=v&k=v` with each value percent-encoded (repeated keys allowed: `managed=a&managed=b`).
pub fn with_query(path: &str, params: &[(&str, &str)]) -> String {
    if params.is_empty() {
        return path.to_string();
    }
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        form.append_pair(k, v);
    }
    format!("{path}?{}", form.finish())
}

/// `results` of a paginated list.
pub fn results_of(body: &Value) -> Result<Vec<Value>, ModuleError> {
    body.get("results")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| ModuleError::msg("Authentik answered a list request without `results`"))
}

fn parse_body(bytes: &[u8]) -> Value {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Value::Null;
    }
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).trim().to_string()))
}

/// The failure message for a non-2xx answer, with the usual causes named.
pub fn api_failure(method: &Method, path: &str, reply: &Reply) -> String {
    let detail = match &reply.body {
        Value::Null => String::new(),
        Value::String(s) => s.chars().take(300).collect(),
        other => other.to_string(),
    };
    let hint = match reply.status {
        401 | 403 => {
            " — the API token was refused: check the token (AUTHENTIK_BOOTSTRAP_TOKEN is only applied on \
             Authentik's first start, on an empty database) and that its user may do this"
        }
        502 | 503 => " — Authentik is still starting: wait for /-/health/ready/ and the token first",
        404 if path.starts_with("/api/v3/") && detail.contains("<") => {
            " — this release has no such API path"
        }
        _ => "",
    };
    format!(
        "Authentik API {method} {} answered {}: {detail}{hint}",
        path.split('?').next().unwrap_or(path),
        reply.status
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testenv::args;
    use serde_json::json;

    #[test]
    fn tunnel_is_the_default_and_the_token_can_come_from_the_env_file() {
        let a = args(
            "authentik_certificate",
            json!({"name": "x", "env_file_path": "/opt/authentik/.env", "authentik_host": "auth.example.com/"}),
        );
        let options = ConnectionOptions::from_args(&a).unwrap();
        assert_eq!(
            options.endpoint,
            Endpoint::Tunnel {
                host: "127.0.0.1".into(),
                port: 9000
            }
        );
        assert_eq!(
            options.token,
            TokenSource::EnvFile {
                path: "/opt/authentik/.env".into(),
                key: "AUTHENTIK_BOOTSTRAP_TOKEN".into()
            }
        );
        assert_eq!(options.public_host.as_deref(), Some("auth.example.com"));
    }

    #[test]
    fn direct_url_names_the_public_host_and_a_given_token_wins() {
        let a = args(
            "authentik_application",
            json!({"authentik_url": "https://auth.example.com:9443/", "token": " abc ", "validate_certs": "no"}),
        );
        let options = ConnectionOptions::from_args(&a).unwrap();
        assert_eq!(options.token, TokenSource::Given("abc".into()));
        assert_eq!(
            options.public_host.as_deref(),
            Some("auth.example.com:9443")
        );
        match &options.endpoint {
            Endpoint::Direct {
                https,
                host,
                port,
                validate_certs,
                base_path,
                ..
            } => {
                assert!(*https && !*validate_certs);
                assert_eq!(
                    (host.as_str(), *port, base_path.as_str()),
                    ("auth.example.com", 9443, "")
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(options.endpoint.host_header(), "auth.example.com:9443");
    }

    #[test]
    fn missing_or_bad_connection_arguments_are_explained() {
        let none =
            ConnectionOptions::from_args(&args("authentik_application", json!({"slug": "x"})));
        assert!(
            matches!(none, Err(ModuleError::Failed { ref msg, .. }) if msg.contains("no API token"))
        );
        let key = ConnectionOptions::from_args(&args(
            "authentik_application",
            json!({"env_file_path": "/x", "token_key": "A;rm -rf /"}),
        ));
        assert!(
            matches!(key, Err(ModuleError::Failed { ref msg, .. }) if msg.contains("token_key"))
        );
        let scheme = ConnectionOptions::from_args(&args(
            "authentik_application",
            json!({"token": "t", "authentik_url": "ftp://x"}),
        ));
        assert!(
            matches!(scheme, Err(ModuleError::Failed { ref msg, .. }) if msg.contains("http://"))
        );
    }

    #[test]
    fn env_values_are_unquoted() {
        assert_eq!(
            parse_env_value(
                "AUTHENTIK_BOOTSTRAP_TOKEN=abc\n",
                "AUTHENTIK_BOOTSTRAP_TOKEN"
            )
            .as_deref(),
            Some("abc")
        );
        assert_eq!(
            parse_env_value("export K='a b'", "K").as_deref(),
            Some("a b")
        );
        assert_eq!(parse_env_value("K=\"x\"", "K").as_deref(), Some("x"));
        assert_eq!(parse_env_value("K=", "K"), None);
        assert_eq!(parse_env_value("KEY2=x", "KEY"), None);
    }

    #[test]
    fn queries_are_encoded_and_repeatable() {
        assert_eq!(
            with_query(
                "/api/v3/propertymappings/provider/scope/",
                &[("managed", "goauthentik.io/a b"), ("managed", "x&y")]
            ),
            "/api/v3/propertymappings/provider/scope/?managed=goauthentik.io%2Fa+b&managed=x%26y"
        );
        assert_eq!(with_query("/p/", &[]), "/p/");
    }

    #[test]
    fn failures_name_the_cause() {
        let denied = Reply {
            status: 403,
            body: json!({"detail": "Token invalid/expired"}),
        };
        let msg = api_failure(&Method::GET, "/api/v3/admin/version/?x=1", &denied);
        assert!(
            msg.contains("answered 403") && msg.contains("token was refused"),
            "{msg}"
        );
        assert!(!msg.contains("x=1"));
        let starting = Reply {
            status: 502,
            body: json!("authentik starting..."),
        };
        assert!(api_failure(&Method::GET, "/api/v3/x/", &starting).contains("still starting"));
    }
}
