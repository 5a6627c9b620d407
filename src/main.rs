fn main() {
    println!("gmm-stream");
}
