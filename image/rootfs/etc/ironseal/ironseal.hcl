# The appliance's configuration (read-only, in the system slot). The TLS certificate is
# generated on first boot in /var/lib/ironseal/tls (the data partition).
# The web console at /ui, how operators run the appliance.
ui = true

storage "redb" { path = "/var/lib/ironseal/ironseal.redb" }

listener "tcp" {
  address = "0.0.0.0:8200"
}

# PCRs: 0 firmware, 2 option ROMs, 4 boot loader and kernel, 7 Secure Boot state, 15 the
# slot's daemon, unit and configuration (ironseal-measure.service).
seal "tpm2" {
  tcti = "device:/dev/tpmrm0"
  pcrs = "0,2,4,7,15"
}
