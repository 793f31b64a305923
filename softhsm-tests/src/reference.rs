//! `IRONSEAL_REFERENCE=openbao`: the same tests against the OpenBao server that ships in
//! the `bao` binary (`bao server`), which checks that the tests themselves encode what
//! Vault/OpenBao do. Tests that pin down Ironseal-only behaviour say so and are skipped
//! in that mode with [`reference_mode`].

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;
use std::process::Command;

use crate::daemon::free_port;
use crate::tools::run_ok;

/// True when the tests run against OpenBao itself (`IRONSEAL_REFERENCE=openbao`).
pub fn reference_mode() -> bool {
    std::env::var("IRONSEAL_REFERENCE").is_ok_and(|v| v == "openbao")
}

/// The config file OpenBao runs with in place of Ironseal's. OpenBao has no redb backend
/// and does not generate certificates: it gets raft storage in `data_dir` and, with TLS,
/// a CA + leaf made here with openssl at the paths Ironseal uses (`data_dir/tls`).
/// `listener` holds the lines of the `listener "tcp"` block so far.
pub(crate) fn openbao_config(data_dir: &Path, listen: &str, tls: bool, listener: &str) -> String {
    let mut listener = listener.to_string();
    if tls {
        make_reference_tls(&data_dir.join("tls"));
        listener.push_str(&format!(
            "  tls_cert_file = \"{}\"\n  tls_key_file = \"{}\"\n",
            data_dir.join("tls/cert.pem").display(),
            data_dir.join("tls/key.pem").display()
        ));
    }
    let cluster = format!("127.0.0.1:{}", free_port());
    format!(
        "storage \"raft\" {{\n  path = \"{}\"\n  node_id = \"n1\"\n}}\n\
         listener \"tcp\" {{\n{listener}  cluster_address = \"{cluster}\"\n}}\n\
         api_addr = \"{}://{listen}\"\ncluster_addr = \"https://{cluster}\"\n\
         log_level = \"info\"\n",
        data_dir.display(),
        if tls { "https" } else { "http" }
    )
}

/// Makes a CA and a leaf for localhost/127.0.0.1 with openssl (reference mode only).
fn make_reference_tls(dir: &Path) {
    if dir.join("cert.pem").exists() {
        return;
    }
    fs::create_dir_all(dir).unwrap();
    let run = |args: &[&str]| {
        run_ok(Command::new("openssl").args(args).current_dir(dir));
    };
    // A new P-256 key with a self-signed CA certificate, or with a request to sign.
    let req = |extra: &[&str]| {
        let common = [
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        run(&[&common[..], extra].concat());
    };
    req(&[
        "-x509",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=test CA",
    ]);
    req(&[
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=localhost",
    ]);
    File::create(dir.join("ext.cnf"))
        .unwrap()
        .write_all(b"subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca-key.pem",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}
