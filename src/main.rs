//! The `binfmtd` command: parse arguments, dispatch, print errors, map exit codes.
fn main() {
    println!("binfmtd");
}
