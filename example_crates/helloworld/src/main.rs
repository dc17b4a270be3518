pub fn hello() -> i32 {
    println!("Hello, world!");
    0
}

fn main() {
    hello();
}
