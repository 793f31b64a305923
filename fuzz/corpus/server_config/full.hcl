storage "redb" { path = "/var/lib/ironseal/ironseal.redb" }
listener "tcp" {
  address       = "127.0.0.1:8200"
  tls_disable   = true
  http_read_timeout = "30s"
  max_request_size = 1048576
  tls_min_version = "tls12"
}
seal "shamir" {}
pkcs11 {
  socket       = "/run/ironseal/pkcs11.sock"
  allowed_uids = [1000, 1001]
  token_label  = "ironseal"
  pin "billing" { token_file = "/etc/ironseal/pkcs11/billing.token" }
}
log_level     = "info"
disable_mlock = false
default_lease_ttl = "768h"
max_lease_ttl     = "768h"
max_batch_items = 1000
ui = true
