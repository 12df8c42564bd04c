use clap::Parser;

/// Sigil server: a private Sigstore (CA, transparency log, CT log, timestamp authority).
#[derive(Parser)]
#[command(name = "sigil-server", version)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
}
