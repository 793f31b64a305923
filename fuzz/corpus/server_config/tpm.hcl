storage "redb" { path = "/tmp/x.redb" }
listener "tcp" { address = "0.0.0.0:8200" tls_cert_file = "/c.pem" tls_key_file = "/k.pem" tls_san = ["a.example"] }
seal "tpm2" { tcti = "swtpm:host=127.0.0.1,port=2321" pcrs = "0,7" }
seal "pkcs11" { lib = "/usr/lib/softhsm/libsofthsm2.so" token_label = "t" key_label = "k" disabled = "true" }
