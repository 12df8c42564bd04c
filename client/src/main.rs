use clap::Parser;

/// sigil: sign and verify artifacts with a private Sigstore.
#[derive(Parser)]
#[command(name = "sigil", version)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
}
