//! Empty: this crate only pins honker-extension for `cargo fetch` (see Cargo.toml).
