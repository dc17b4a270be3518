//! 10,000 generated functions (see build.rs); prints how many it called and their sum.
mod generated {
    include!(concat!(env!("OUT_DIR"), "/generated.rs"));
}

fn main() {
    let sum: u64 = generated::ALL.iter().map(|f| f()).sum();
    println!("functions {} sum {}", generated::ALL.len(), sum);
}
