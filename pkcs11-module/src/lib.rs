//! `libironseal_pkcs11.so`: the appliance's PKCS#11 library. Every function that needs
//! the appliance becomes one call on the wire (see `pkcs11_wire`); `unsafe` lives only in
//! the layer that turns the application's pointers into safe values and back.
