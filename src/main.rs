//! The `lshed` binary: everything lives in the library.

fn main() {
    std::process::exit(lshed::cli::main());
}
