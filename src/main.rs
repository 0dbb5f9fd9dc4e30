fn main() {
    std::process::exit(advx::cli::main());
}
