//! Compiles the conformance suite into the tests only when a PKCS#11 module is configured
//! (`KMSKIT_PKCS11_MODULE`, which scripts/test.sh sets). Without one the suite is replaced by a test that
//! reports the skip, or fails when `CI` is set.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(kmskit_pkcs11_module)");
    println!("cargo::rerun-if-env-changed=KMSKIT_PKCS11_MODULE");
    if std::env::var_os("KMSKIT_PKCS11_MODULE").is_some_and(|m| !m.is_empty()) {
        println!("cargo::rustc-cfg=kmskit_pkcs11_module");
    }
}
