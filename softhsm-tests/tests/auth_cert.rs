//! TLS certificate auth (`auth/cert`) and the listener's client-certificate options:
//! client certificates made in the test with openssl log in with the bao CLI and hvac
//! and read a secret; a wrong common name, an untrusted CA and no certificate are
//! refused with OpenBao's words; renewal needs the certificate the token logged in with;
//! `tls_require_and_verify_client_cert` refuses a handshake without a certificate; and
//! contradictory listener options are refused at start.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use softhsm_tests::tools::{python, run_ok};
use softhsm_tests::{Body, Daemon, HttpResponse};
use tempfile::TempDir;

const APP_READ: &str = r#"path "secret/data/app/*" { capabilities = ["read"] }"#;

/// CAs and client certificates made with openssl in a directory of their own.
struct Pki {
    dir: TempDir,
}

impl Pki {
    fn new() -> Pki {
        Pki {
            dir: tempfile::Builder::new()
                .prefix("ironseal-pki-")
                .tempdir()
                .unwrap(),
        }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    fn openssl(&self, args: &[&str]) {
        run_ok(
            Command::new("openssl")
                .args(args)
                .current_dir(self.dir.path()),
        );
    }

    /// `name.pem` and `name-key.pem`: a self-signed P-256 CA.
    fn ca(&self, name: &str) {
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}-key.pem"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
    }

    /// `name.pem` and `name-key.pem`: a client certificate for `cn` (and the DNS name
    /// `cn.example`) issued by the CA `ca`.
    fn client(&self, ca: &str, name: &str, cn: &str) -> (PathBuf, PathBuf) {
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}-key.pem"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={cn}/OU=payments"),
        ]);
        std::fs::write(
            self.path(&format!("{name}.ext")),
            format!(
                "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
                 extendedKeyUsage=clientAuth\nsubjectAltName=DNS:{cn}.example\n"
            ),
        )
        .unwrap();
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}-key.pem"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
        ]);
        (
            self.path(&format!("{name}.pem")),
            self.path(&format!("{name}-key.pem")),
        )
    }
}

/// An initialised, unsealed TLS daemon (`listener_hcl` in its listener block) with a
/// secret, a policy reading it, and the cert method enabled.
fn serve(d: &mut Daemon) {
    d.init(1, 1);
    d.unseal();
    d.ensure_secret_kv2();
    d.kv_put_value("app/db", "hunter2");
    d.bao_policy_write("app-read", APP_READ);
    d.bao(&["auth", "enable", "cert"]).ok();
}

fn with_cert(cert: &Path, key: &Path) -> Vec<String> {
    vec![
        "--cert".into(),
        cert.display().to_string(),
        "--key".into(),
        key.display().to_string(),
    ]
}

/// A request presenting `client` (cert, key) or no certificate.
fn request(
    d: &Daemon,
    method: &str,
    path: &str,
    token: Option<&str>,
    client: Option<(&Path, &Path)>,
) -> HttpResponse {
    let mut extra = client.map(|(c, k)| with_cert(c, k)).unwrap_or_default();
    if let Some(t) = token {
        extra.extend(["-H".to_string(), format!("X-Vault-Token: {t}")]);
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    d.http_with(method, path, Body::Json("{}"), &extra)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

fn read_secret(d: &Daemon, token: &str) -> String {
    let r = d.http("GET", "/v1/secret/data/app/db", Some(token), Body::None);
    assert_eq!(r.status, 200, "{r}");
    r.json()["data"]["data"]["value"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn cert_login_with_bao_and_hvac_reads_a_secret_and_refuses_the_rest() {
    let pki = Pki::new();
    pki.ca("clients");
    pki.ca("stranger");
    let (web, web_key) = pki.client("clients", "web", "web");
    let (intruder, intruder_key) = pki.client("clients", "intruder", "intruder");
    let (forged, forged_key) = pki.client("stranger", "forged", "web");

    let mut d = Daemon::config(true);
    serve(&mut d);
    let ca = pki.path("clients.pem");
    d.bao(&[
        "write",
        "auth/cert/certs/web",
        &format!("certificate=@{}", ca.display()),
        "allowed_common_names=web",
        "allowed_dns_sans=*.example",
        "token_policies=app-read",
        "token_ttl=10m",
    ])
    .ok();
    let role = d.bao(&["read", "-format=json", "auth/cert/certs/web"]).ok();
    let data = &role.json()["data"];
    assert_eq!(data["display_name"], "web", "{role}");
    assert_eq!(data["allowed_common_names"][0], "web", "{role}");
    let listed = d.bao(&["list", "-format=json", "auth/cert/certs"]).ok();
    assert_eq!(listed.json()[0], "web", "{listed}");

    // The bao CLI presents the certificate in its TLS handshake.
    let login = d
        .bao_as(
            None,
            &[
                "login",
                "-method=cert",
                "-token-only",
                "-no-store",
                &format!("-client-cert={}", web.display()),
                &format!("-client-key={}", web_key.display()),
            ],
        )
        .ok();
    let token = login.stdout.trim().to_string();
    assert_eq!(read_secret(&d, &token), "hunter2");
    let looked = d.bao_token_lookup(&token);
    assert_eq!(looked.data["meta"]["cert_name"], "web", "{}", looked.out);
    assert_eq!(looked.data["meta"]["common_name"], "web", "{}", looked.out);
    assert_eq!(looked.data["display_name"], "cert-web", "{}", looked.out);

    // hvac, naming the role.
    let script = r#"
import json, os, hvac
c = hvac.Client(url=os.environ["ADDR"], verify=os.environ["CACERT"])
# hvac takes the server's CA from the client's `verify`.
auth = c.auth.cert.login(name="web", cert_pem=os.environ["CERT"],
                         key_pem=os.environ["KEY"])["auth"]
secret = c.secrets.kv.v2.read_secret_version(path="app/db", mount_point="secret",
                                              raise_on_deleted_version=True)
print(json.dumps({"auth": auth, "value": secret["data"]["data"]["value"]}))
"#;
    let out = run_ok(
        Command::new(python())
            .arg("-c")
            .arg(script)
            .env("ADDR", &d.addr)
            .env("CACERT", d.cacert().unwrap())
            .env("CERT", &web)
            .env("KEY", &web_key),
    );
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["value"], "hunter2", "{v}");
    assert!(
        v["auth"]["policies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "app-read"),
        "{v}"
    );

    let refused = |client: Option<(&Path, &Path)>, words: &str| {
        let r = request(&d, "POST", "/v1/auth/cert/login", None, client);
        r.assert_error(400, words);
    };
    refused(
        Some((&intruder, &intruder_key)),
        "no chain matching all constraints could be found for this login certificate",
    );
    refused(
        Some((&forged, &forged_key)),
        "invalid certificate or no client certificate supplied",
    );
    refused(None, "no client certificate found");

    // Renewal checks the certificate again: the one the token logged in with renews it,
    // none does not.
    let renew = |client| {
        request(
            &d,
            "POST",
            "/v1/auth/token/renew-self",
            Some(&token),
            client,
        )
    };
    let r = renew(Some((web.as_path(), web_key.as_path())));
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.json()["auth"]["metadata"]["cert_name"], "web", "{r}");
    renew(None).assert_error(400, "no client certificate found");
    // With its role gone the method declines: 204, the token left as it is.
    d.bao(&["delete", "auth/cert/certs/web"]).ok();
    let r = renew(Some((web.as_path(), web_key.as_path())));
    assert_eq!(r.status, 204, "{r}");
}

#[test]
fn a_listener_requiring_client_certificates_refuses_a_handshake_without_one() {
    let pki = Pki::new();
    pki.ca("clients");
    let (web, web_key) = pki.client("clients", "web", "web");
    let listener = format!(
        "tls_client_ca_file = \"{}\"\ntls_require_and_verify_client_cert = true",
        pki.path("clients.pem").display()
    );
    let mut d = Daemon::config_with_client_cert(&listener, &web, &web_key);
    serve(&mut d);
    d.bao(&[
        "write",
        "auth/cert/certs/web",
        &format!("certificate=@{}", pki.path("clients.pem").display()),
        "token_policies=app-read",
    ])
    .ok();
    let login = d
        .bao_as(None, &["login", "-method=cert", "-token-only", "-no-store"])
        .ok();
    assert_eq!(read_secret(&d, login.stdout.trim()), "hunter2");

    // No certificate: curl gets no HTTP answer at all.
    let mut curl = Command::new("curl");
    curl.args(["-sS", "--noproxy", "*", "--max-time", "20", "--cacert"])
        .arg(d.cacert().unwrap())
        .arg(format!("{}/v1/sys/health", d.addr));
    let out = curl.output().unwrap();
    assert!(
        !out.status.success(),
        "a client without a certificate was served: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn contradictory_client_certificate_options_are_refused_at_start() {
    let pki = Pki::new();
    pki.ca("clients");
    let out = Daemon::config_refusal(&format!(
        "tls_client_ca_file = \"{}\"\ntls_require_and_verify_client_cert = true\ntls_disable_client_certs = true",
        pki.path("clients.pem").display()
    ));
    assert!(
        out.contains(
            "'tls_disable_client_certs' and 'tls_require_and_verify_client_cert' are mutually exclusive"
        ),
        "{out}"
    );
}
