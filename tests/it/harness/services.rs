//! The servers the tests start: CNCF distribution (source and destination registry),
//! nginx (the CDN stand-in in front of a bucket), moto (S3), Azurite (Azure Blob) and
//! `trivy-mirror serve`.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use super::{Proc, free_port, http, mirror, run_ok, system_tool, tool};

/// A CNCF distribution registry on loopback.
pub struct Registry {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Where it stores blobs (for corrupting one on purpose).
    pub storage: PathBuf,
    /// Basic credentials it requires, if any.
    pub credentials: Option<(String, String)>,
    _proc: Proc,
    _dir: TempDir,
}

impl Registry {
    /// An open registry.
    pub fn start() -> Registry {
        Self::start_inner(None, None)
    }

    /// A registry requiring HTTP Basic auth (htpasswd).
    pub fn start_with_auth(user: &str, password: &str) -> Registry {
        Self::start_inner(Some((user.to_string(), password.to_string())), None)
    }

    /// An open registry serving TLS only, with this certificate and key (PEM).
    pub fn start_tls(cert: &Path, key: &Path) -> Registry {
        Self::start_inner(None, Some((cert, key)))
    }

    fn start_inner(credentials: Option<(String, String)>, tls: Option<(&Path, &Path)>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let storage = dir.path().join("storage");
        let mut auth = String::new();
        if let Some((u, p)) = &credentials {
            let out = run_ok("htpasswd", Command::new(system_tool("htpasswd")).args(["-Bbn", u, p]));
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, out.stdout).unwrap();
            auth = format!("auth:\n  htpasswd:\n    realm: trivy-mirror-test\n    path: {}\n", file.display());
        }
        let tls = match tls {
            Some((cert, key)) => format!("  tls:\n    certificate: {}\n    key: {}\n", cert.display(), key.display()),
            None => String::new(),
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: trivy-mirror-test\n{tls}{auth}",
            storage.display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let mut proc = Proc::spawn(
            "docker-registry",
            Command::new(system_tool("docker-registry")).arg("serve").arg(&config_path),
            dir.path().join("registry.log"),
        );
        proc.wait_http(port);
        Registry { addr: format!("127.0.0.1:{port}"), storage, credentials, _proc: proc, _dir: dir }
    }

    /// The registry's access log so far.
    pub fn log(&self) -> String {
        self._proc.log()
    }

    /// The file holding a blob's bytes in distribution's filesystem layout.
    pub fn blob_file(&self, hex: &str) -> PathBuf {
        self.storage.join(format!("docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]))
    }

    /// Copy an OCI layout tag into `repo:tag` with skopeo, keeping digests.
    pub fn seed(&self, layout: &Path, layout_tag: &str, repo: &str, tag: &str) {
        let mut cmd = Command::new(system_tool("skopeo"));
        cmd.args(["copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false"]);
        if let Some((u, p)) = &self.credentials {
            cmd.arg("--dest-creds").arg(format!("{u}:{p}"));
        }
        cmd.arg(format!("oci:{}:{layout_tag}", layout.display())).arg(format!("docker://{}/{repo}:{tag}", self.addr));
        run_ok("skopeo copy", &mut cmd);
    }
}

/// `skopeo inspect --raw` of a reference: the manifest bytes as served.
pub fn skopeo_raw(reference: &str, creds: Option<&str>) -> Vec<u8> {
    let mut cmd = Command::new(system_tool("skopeo"));
    cmd.args(["inspect", "--raw", "--tls-verify=false"]);
    if let Some(c) = creds {
        cmd.arg("--creds").arg(c);
    }
    run_ok("skopeo inspect", cmd.arg(format!("docker://{reference}"))).stdout
}

/// nginx on loopback with a server block given by the test.
pub struct Nginx {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    dir: TempDir,
    _proc: Proc,
}

impl Nginx {
    /// Start nginx with `server_body` inside `server { listen …; <body> }`.
    pub fn start(server_body: &str) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let d = dir.path().display();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               gzip off;\n  types {{ }}\n  default_type application/octet-stream;\n\
               server {{\n    listen 127.0.0.1:{port};\n{server_body}\n  }}\n}}\n"
        );
        std::fs::create_dir_all(dir.path().join("www")).unwrap();
        let conf = conf.replace("@WWW@", &dir.path().join("www").display().to_string());
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let mut proc = Proc::spawn(
            "nginx",
            Command::new(system_tool("nginx")).arg("-c").arg(&conf_path).arg("-p").arg(dir.path()),
            dir.path().join("stdout.log"),
        );
        proc.wait_http(port);
        Nginx { addr: format!("127.0.0.1:{port}"), dir, _proc: proc }
    }

    /// The CDN stand-in in front of a bucket: `/v2/` → `v2/index.json`, everything else
    /// proxied to `origin` (`http://127.0.0.1:PORT/BUCKET/PREFIX/`) with `host` as Host,
    /// headers passed through, no compression. The Terraform modules implement the
    /// same rules (terraform/README.md shows the mapping).
    pub fn cdn(origin: &str, host: &str) -> Nginx {
        Nginx::start(&format!(
            "    location = /v2/ {{ rewrite ^ /v2/index.json last; }}\n\
                 location = /v2 {{ rewrite ^ /v2/index.json last; }}\n\
                 location / {{\n      proxy_pass {origin};\n      proxy_set_header Host {host};\n\
                   proxy_set_header Accept-Encoding \"\";\n      proxy_hide_header x-amz-request-id;\n    }}"
        ))
    }

    /// The directory nginx may serve static files from (`root` in the server body).
    pub fn static_root(&self) -> std::path::PathBuf {
        self.dir.path().join("www")
    }

    /// Lines of the access log.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    /// A registry's blob CDN stand-in: `/cdn/blobs/sha256:<hex>` served from `registry`'s own
    /// blob files at `rate` per connection (`0`: no limit), with Range support, and 403 to any
    /// request that carries credentials; `extra` adds directives (`max_ranges 0;`).
    pub fn blob_cdn(registry: &Registry, rate: &str, extra: &str) -> Nginx {
        let root = registry.storage.join("docker/registry/v2/blobs/sha256");
        Nginx::start(&format!(
            "    location ~ ^/cdn/blobs/sha256:(..)(.*)$ {{\n      if ($http_authorization) {{ return 403; }}\n      \
             alias {}/$1/$1$2/data;\n      limit_rate {rate};\n      {extra}\n    }}",
            root.display()
        ))
    }

    /// A registry front as public registries are: blob GETs answer 307 to
    /// `http://<cdn>/cdn/blobs/sha256:<hex>` (`cdn`: a [`Nginx::blob_cdn`], or a fault proxy
    /// in front of one), everything else goes to the registry with the client's Authorization.
    pub fn registry_front(registry: &Registry, cdn: &str) -> Nginx {
        Nginx::start(&format!(
            "    location ~ ^/v2/.+/blobs/sha256:(.+)$ {{ return 307 http://{cdn}/cdn/blobs/sha256:$1; }}\n    \
             location / {{ proxy_pass http://{}; proxy_set_header Host $http_host; }}",
            registry.addr
        ))
    }
}

/// moto's S3 server.
pub struct Moto {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    proc: Proc,
    _dir: TempDir,
}

impl Moto {
    /// Start moto with one bucket created.
    pub fn start(bucket: &str) -> Moto {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut proc = Proc::spawn(
            "moto_server",
            Command::new(tool("py/bin/moto_server")).args(["-H", "127.0.0.1", "-p", &port.to_string()]),
            dir.path().join("moto.log"),
        );
        proc.wait_http(port);
        let endpoint = format!("http://127.0.0.1:{port}");
        let resp = http().put(format!("{endpoint}/{bucket}")).send().unwrap();
        assert!(resp.status().is_success(), "creating bucket: {}", resp.status());
        // The CDN stand-in reads anonymously, as an origin-access identity would.
        let policy = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":["s3:GetObject","s3:HeadObject"],"Resource":"arn:aws:s3:::{bucket}/*"}}]}}"#
        );
        let resp = http().put(format!("{endpoint}/{bucket}?policy")).body(policy).send().unwrap();
        assert!(resp.status().is_success(), "setting the bucket policy: {}", resp.status());
        Moto { endpoint, addr: format!("127.0.0.1:{port}"), proc, _dir: dir }
    }

    /// object_store's environment for this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    /// An object_store client for `bucket` on this server, built in process (no
    /// environment), for writing behind trivy-mirror's back or running the conformance
    /// routine.
    pub fn store(&self, bucket: &str) -> object_store::aws::AmazonS3 {
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_access_key_id("testing")
            .with_secret_access_key("testing")
            .build()
            .unwrap()
    }

    /// Everything moto logged.
    pub fn log(&self) -> String {
        self.proc.log()
    }

    /// Requests moto has logged so far (one access-log line each).
    pub fn requests(&self) -> usize {
        let methods = ["\"GET ", "\"HEAD ", "\"PUT ", "\"POST ", "\"DELETE "];
        self.proc.log().lines().filter(|l| methods.iter().any(|m| l.contains(m))).count()
    }

    /// Write requests (PUT/POST/DELETE) moto has logged so far.
    pub fn writes(&self) -> usize {
        self.proc
            .log()
            .lines()
            .filter(|l| l.contains("\"PUT ") || l.contains("\"POST ") || l.contains("\"DELETE "))
            .count()
    }
}

/// Azurite's well-known development account.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// Its well-known key (public, in Azurite's documentation).
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Azurite's blob service.
pub struct Azurite {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    _proc: Proc,
    _dir: TempDir,
}

impl Azurite {
    /// Start Azurite and create `container` with anonymous blob read access (what a CDN
    /// origin without credentials needs in the test).
    pub fn start(container: &str) -> Azurite {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let node = tool("node/node_modules");
        let mut proc = Proc::spawn(
            "azurite",
            Command::new(node.join(".bin/azurite-blob"))
                .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string(), "--location"])
                .arg(dir.path())
                .args(["--skipApiVersionCheck", "--loose", "--disableTelemetry", "--debug"])
                .arg(dir.path().join("debug.log")),
            dir.path().join("azurite.log"),
        );
        proc.wait_http(port);
        let script = format!(
            "const {{ BlobServiceClient }} = require('@azure/storage-blob');\n\
             const conn = 'DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};';\n\
             BlobServiceClient.fromConnectionString(conn).getContainerClient('{container}').create({{ access: 'blob' }}).then(() => process.exit(0), e => {{ console.error(e); process.exit(1); }});\n"
        );
        run_ok("creating the Azurite container", Command::new("node").arg("-e").arg(script).env("NODE_PATH", &node));
        Azurite { addr: format!("127.0.0.1:{port}"), _proc: proc, _dir: dir }
    }

    /// object_store's environment for this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AZURE_STORAGE_USE_EMULATOR", "true".into()),
            ("AZURITE_BLOB_STORAGE_URL", format!("http://{}", self.addr)),
        ]
    }
}

/// A CA and a server certificate for 127.0.0.1 it signed, made with the openssl CLI.
pub struct TestCa {
    /// The CA certificate (PEM), for SSL_CERT_FILE and --*-ca-file.
    pub ca: std::path::PathBuf,
    /// The server certificate.
    pub cert: std::path::PathBuf,
    /// Its key.
    pub key: std::path::PathBuf,
}

impl TestCa {
    /// Make a CA and a certificate for 127.0.0.1 in `dir`.
    pub fn new(dir: &std::path::Path) -> TestCa {
        std::fs::create_dir_all(dir).unwrap();
        let p = |name: &str| dir.join(name);
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        let openssl = || std::process::Command::new(system_tool("openssl"));
        run_ok(
            "openssl req -x509",
            openssl().args(["req", "-x509"]).args(ec).args(["-days", "2", "-subj", "/CN=trivy-mirror test CA"]).args([
                "-keyout".as_ref(),
                p("ca.key").as_os_str(),
                "-out".as_ref(),
                p("ca.pem").as_os_str(),
            ]),
        );
        run_ok(
            "openssl req",
            openssl().arg("req").args(ec).args(["-subj", "/CN=127.0.0.1"]).args([
                "-keyout".as_ref(),
                p("server.key").as_os_str(),
                "-out".as_ref(),
                p("server.csr").as_os_str(),
            ]),
        );
        std::fs::write(p("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        run_ok(
            "openssl x509 -req",
            openssl().args(["x509", "-req", "-days", "2", "-CAcreateserial"]).args([
                "-in".as_ref(),
                p("server.csr").as_os_str(),
                "-CA".as_ref(),
                p("ca.pem").as_os_str(),
                "-CAkey".as_ref(),
                p("ca.key").as_os_str(),
                "-extfile".as_ref(),
                p("san.ext").as_os_str(),
                "-out".as_ref(),
                p("server.pem").as_os_str(),
            ]),
        );
        TestCa { ca: p("ca.pem"), cert: p("server.pem"), key: p("server.key") }
    }
}

/// `trivy-mirror serve DIR` on a free port.
pub struct Serve {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    _proc: Proc,
}

impl Serve {
    /// Serve `dir`.
    pub fn start(dir: &Path) -> Serve {
        Self::start_on(dir, free_port())
    }

    /// Serve `dir` on a chosen port (when the public URL must be known beforehand).
    pub fn start_on(dir: &Path, port: u16) -> Serve {
        let log = dir.parent().unwrap_or(dir).join(format!("serve-{port}.log"));
        let mut proc = Proc::spawn(
            "trivy-mirror serve",
            mirror().arg("serve").arg(dir).arg("--listen").arg(format!("127.0.0.1:{port}")),
            log,
        );
        proc.wait_http(port);
        Serve { addr: format!("127.0.0.1:{port}"), _proc: proc }
    }

    /// Serve `dir` with extra flags (TLS, auth, …), ready once the port accepts.
    pub fn start_with(dir: &Path, args: &[&str]) -> Serve {
        Self::start_with_on(dir, free_port(), args)
    }

    /// [`Serve::start_with`] on a chosen port.
    pub fn start_with_on(dir: &Path, port: u16, args: &[&str]) -> Serve {
        let log = dir.parent().unwrap_or(dir).join(format!("serve-{port}.log"));
        let mut proc = Proc::spawn(
            "trivy-mirror serve",
            mirror().arg("serve").arg(dir).arg("--listen").arg(format!("127.0.0.1:{port}")).args(args),
            log,
        );
        proc.wait_until(std::time::Duration::from_secs(60), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Serve { addr: format!("127.0.0.1:{port}"), _proc: proc }
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        self._proc.log()
    }

    /// The server process (to signal it).
    pub fn process(&mut self) -> &mut Proc {
        &mut self._proc
    }
}

/// GET (or HEAD) a URL: status, headers and body.
pub fn fetch(method: &str, url: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let c = http();
    let req = match method {
        "HEAD" => c.head(url),
        _ => c.get(url),
    };
    let resp = req.send().unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().map(|b| b.to_vec()).unwrap_or_default();
    (status, headers, body)
}

/// A header as a string ("" when absent).
pub fn header(h: &reqwest::header::HeaderMap, name: &str) -> String {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
}
