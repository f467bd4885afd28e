fn main() {
    std::process::exit(labctl::cli::main());
}
