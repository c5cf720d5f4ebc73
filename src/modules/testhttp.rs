//! A tiny HTTP/1.1 server on 127.0.0.1 for the url modules' tests: fixed routes, one request per
//! connection, and a record of what each route received.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use base64::Engine;

#[derive(Clone)]
pub struct Route {
    /// Path with query, as the request line carries it.
    pub path: String,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// `user:password` required (401 otherwise).
    pub auth: Option<String>,
}

impl Route {
    pub fn ok(path: &str, body: &[u8]) -> Route {
        Route::status(path, 200, "OK", body)
    }

    pub fn status(path: &str, status: u16, reason: &str, body: &[u8]) -> Route {
        Route {
            path: path.into(),
            status,
            reason: reason.into(),
            headers: Vec::new(),
            body: body.to_vec(),
            auth: None,
        }
    }

    pub fn redirect(path: &str, location: &str) -> Route {
        Route::status(path, 302, "Found", b"").header("Location", location)
    }

    pub fn header(mut self, name: &str, value: &str) -> Route {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn basic_auth(mut self, user: &str, password: &str) -> Route {
        self.auth = Some(format!("{user}:{password}"));
        self
    }
}

#[derive(Default)]
struct State {
    routes: HashMap<String, Route>,
    requests: HashMap<String, Vec<String>>,
}

pub struct TestServer {
    port: u16,
    state: Arc<Mutex<State>>,
}

impl TestServer {
    pub fn start(routes: Vec<Route>) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(State {
            routes: routes.into_iter().map(|r| (r.path.clone(), r)).collect(),
            requests: HashMap::new(),
        }));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &shared);
                });
            }
        });
        TestServer { port, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn set(&self, path: &str, body: &[u8]) {
        let mut state = self.state.lock().expect("lock");
        if let Some(route) = state.routes.get_mut(path) {
            route.body = body.to_vec();
        }
    }

    pub fn hits(&self, path: &str) -> usize {
        let state = self.state.lock().expect("lock");
        state.requests.get(path).map_or(0, Vec::len)
    }

    /// The last request to `path`: request line, headers and body as text.
    pub fn last_request(&self, path: &str) -> Option<String> {
        let state = self.state.lock().expect("lock");
        state.requests.get(path).and_then(|r| r.last().cloned())
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    let mut line = String::new();
    reader.read_line(&mut line)?;
    request.push_str(&line);
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("/").to_string();
    let mut length = 0usize;
    let mut authorization = None;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        request.push_str(&line);
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim().to_string();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().unwrap_or(0);
            }
            if name.eq_ignore_ascii_case("authorization") {
                authorization = Some(value);
            }
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    request.push('\n');
    request.push_str(&String::from_utf8_lossy(&body));

    let route = {
        let mut state = state.lock().expect("lock");
        state
            .requests
            .entry(path.clone())
            .or_default()
            .push(request);
        state.routes.get(&path).cloned()
    };
    let route = match route {
        None => Route::status(&path, 404, "Not Found", b"no such page"),
        Some(route) => match &route.auth {
            Some(wanted) => {
                let expected = format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(wanted)
                );
                if authorization.as_deref() == Some(expected.as_str()) {
                    route
                } else {
                    Route::status(&path, 401, "Unauthorized", b"who are you")
                        .header("WWW-Authenticate", "Basic realm=\"test\"")
                }
            }
            None => route,
        },
    };
    let mut out = stream;
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        route.status,
        route.reason,
        route.body.len()
    );
    for (name, value) in &route.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    if method != "HEAD" {
        out.write_all(&route.body)?;
    }
    out.flush()
}

/// A local TaskEnv whose PATH has every program of /usr/bin and /bin except curl, to exercise the
/// wget fallback.
pub struct NoCurlEnv {
    pub inner: super::testenv::LocalEnv,
    bin: tempfile::TempDir,
}

impl NoCurlEnv {
    pub fn new() -> NoCurlEnv {
        let bin = tempfile::tempdir().expect("tempdir");
        for dir in ["/usr/bin", "/bin", "/usr/sbin", "/sbin"] {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                if name == "curl" || bin.path().join(&name).exists() {
                    continue;
                }
                let _ = std::os::unix::fs::symlink(entry.path(), bin.path().join(&name));
            }
        }
        NoCurlEnv {
            inner: super::testenv::LocalEnv::new(),
            bin,
        }
    }
}

#[async_trait::async_trait]
impl super::TaskEnv for NoCurlEnv {
    async fn run(
        &self,
        script: &str,
        stdin: Option<Vec<u8>>,
    ) -> Result<crate::transport::ExecOutput, super::ModuleError> {
        let script = format!("PATH={}; export PATH\n{script}", self.bin.path().display());
        self.inner.run(&script, stdin).await
    }
    async fn open_tunnel(
        &self,
        _host: &str,
        _port: u16,
    ) -> Result<Box<dyn crate::transport::Tunnel>, super::ModuleError> {
        Err(super::ModuleError::msg("no tunnels in the test environment"))
    }

    fn render_template_file(&self, p: &std::path::Path) -> Result<String, String> {
        self.inner.render_template_file(p)
    }
    fn find_file(&self, s: &str, n: &str) -> Option<std::path::PathBuf> {
        self.inner.find_file(s, n)
    }
    fn eval_expr(&self, expr: &str) -> Result<serde_json::Value, String> {
        self.inner.eval_expr(expr)
    }
    fn check_mode(&self) -> bool {
        false
    }
    fn diff_mode(&self) -> bool {
        false
    }
}
