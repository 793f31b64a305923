# App policy
path "secret/data/app/*" {
  capabilities = ["create", "read", "update", "list"]
  allowed_parameters = { "data" = [] }
  min_wrapping_ttl = "1s"
  max_wrapping_ttl = "90s"
}
path "transit/encrypt/+" { capabilities = ["update"] }
path "sys/policies/acl/*" {
  capabilities = ["deny"]
  denied_parameters = { "policy" = ["*"] }
  required_parameters = ["name"]
}
