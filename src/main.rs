fn main() {
    labctl::cli::default_sigpipe();
    std::process::exit(labctl::cli::main());
}
