//! `uniffi-bindgen`, built from the same uniffi version as `sluice-ffi` so the generated
//! sources always match the library's scaffolding.

fn main() {
    uniffi::uniffi_bindgen_main()
}
