//! `sigil`: sign and verify artifacts with a private Sigstore.

fn main() -> std::process::ExitCode {
    sigil::cli::main()
}
