//! Runs that misbehave on purpose: hang, crash, abort, many threads, many calls.
use std::env;
use std::thread;
use std::time::Duration;

#[inline(never)]
pub fn tick(n: u64) -> u64 {
    std::hint::black_box(n.wrapping_mul(2).wrapping_add(1))
}

#[inline(never)]
pub fn label(text: &str) -> usize {
    std::hint::black_box(text.len())
}

fn main() {
    let args: Vec<String> = env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("loop");
    let count: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3);
    match mode {
        // tick `count` times, then print the sum of what tick returned
        "loop" => {
            let mut sum = 0u64;
            for i in 0..count {
                sum = sum.wrapping_add(tick(i));
            }
            println!("ticks {} sum {}", count, sum);
        }
        // tick forever, 100 times a second
        "hang" => {
            let mut i = 0;
            loop {
                tick(i);
                i += 1;
                if i == count {
                    println!("ticked {}", i);
                }
                thread::sleep(Duration::from_millis(10));
            }
        }
        // tick `count` times, then die of SIGSEGV
        "segv" => {
            for i in 0..count {
                tick(i);
            }
            println!("ticked {}", count);
            unsafe {
                std::ptr::write_volatile(std::ptr::null_mut::<u64>(), 1);
            }
        }
        // tick `count` times, then abort
        "abort" => {
            for i in 0..count {
                tick(i);
            }
            println!("ticked {}", count);
            std::process::abort();
        }
        // `count` threads, each ticking 1,000 times
        "threads" => {
            let handles: Vec<_> = (0..count)
                .map(|t| thread::spawn(move || (0..1000).map(|i| tick(t * 1000 + i)).count()))
                .collect();
            let total: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
            println!("threads {} ticks {}", count, total);
        }
        // tick `count` times, then spawn two copies of itself in mode `tree` with
        // depth-1 (args[3], default 2), each spawning theirs: 2^(depth+1)-1 processes.
        // Prints "tree <depth> processes <P> ticks <T>" with every descendant's ticks in T.
        "tree" => {
            let depth: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(2);
            let mut processes = 1u64;
            let mut ticks = 0u64;
            for i in 0..count {
                tick(i);
                ticks += 1;
            }
            if depth > 0 {
                let exe = env::current_exe().expect("current_exe");
                let children: Vec<_> = (0..2)
                    .map(|_| {
                        std::process::Command::new(&exe)
                            .args(["tree", &count.to_string(), &(depth - 1).to_string()])
                            .stdout(std::process::Stdio::piped())
                            .spawn()
                            .expect("spawn")
                    })
                    .collect();
                for child in children {
                    let out = child.wait_with_output().expect("wait");
                    let text = String::from_utf8_lossy(&out.stdout);
                    let words: Vec<&str> = text.split_whitespace().collect();
                    processes += words[3].parse::<u64>().unwrap();
                    ticks += words[5].parse::<u64>().unwrap();
                }
            }
            println!("tree {} processes {} ticks {}", depth, processes, ticks);
        }
        // `spawn COUNT THEN CHILD...`: start a copy of itself running CHILD... (default:
        // `hang COUNT`) with this process's stdout and stderr, print "spawned <pid>", tick
        // COUNT times, then exit 0 (THEN = exit) or tick for ever (THEN = hang). With
        // WORKLOAD_DETACH set, the child leads a process group of its own.
        "spawn" => {
            let then = args.get(3).map(String::as_str).unwrap_or("exit");
            let child_args: Vec<String> = if args.len() > 4 {
                args[4..].to_vec()
            } else {
                vec!["hang".to_string(), count.to_string()]
            };
            let mut command = std::process::Command::new(env::current_exe().expect("exe"));
            command.args(&child_args);
            command.env("WORKLOAD_PARENT", std::process::id().to_string());
            if env::var_os("WORKLOAD_DETACH").is_some() {
                use std::os::unix::process::CommandExt;
                command.process_group(0);
            }
            let child = command.spawn().expect("spawn");
            println!("spawned {}", child.id());
            for i in 0..count {
                tick(i);
            }
            if then == "hang" {
                loop {
                    tick(0);
                    thread::sleep(Duration::from_millis(10));
                }
            }
        }
        // tick and print a line 100 times a second, for ever
        "chatter" => {
            let mut i = 0;
            loop {
                println!("tick {}", tick(i));
                i += 1;
                thread::sleep(Duration::from_millis(10));
            }
        }
        // wait until the parent process (the `spawn` that started it) has exited, then
        // tick `count` times and print
        "orphan" => {
            let parent: u32 = env::var("WORKLOAD_PARENT")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(std::os::unix::process::parent_id);
            while std::os::unix::process::parent_id() == parent {
                thread::sleep(Duration::from_millis(1));
            } thread::sleep(Duration::from_millis(300)); // alive a while after its parent: a run sees it
            for i in 0..count {
                tick(i);
            }
            println!("orphan ticked {}", count);
        }
        // `fork COUNT HOW`: fork without exec; the child labels and ticks 100..100+COUNT,
        // then ends by HOW (exit: _exit(3), segv, kill: SIGKILL to itself); the parent labels
        // and ticks 0..COUNT, waits, and prints how the child ended and every label.
        "fork" => {
            extern "C" {
                fn fork() -> i32;
                fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
                fn _exit(code: i32) -> !;
                fn raise(signal: i32) -> i32;
            }
            let how = args.get(3).map(String::as_str).unwrap_or("exit").to_string();
            let pid = unsafe { fork() };
            let first = if pid == 0 { 100 } else { 0 };
            for i in first..first + count {
                let text = format!("{} {}", if pid == 0 { "child" } else { "parent" }, i);
                println!("label {:?} -> {}", text, label(&text));
                tick(i);
            }
            if pid == 0 {
                match how.as_str() {
                    "segv" => unsafe { std::ptr::write_volatile(std::ptr::null_mut::<u64>(), 1) },
                    "kill" => unsafe {
                        raise(9);
                    },
                    _ => {}
                }
                unsafe { _exit(3) };
            }
            let mut status = 0;
            unsafe { waitpid(pid, &mut status, 0) };
            println!("child {} status {}", pid, status);
        }
        // print how many threads this process has (the entries of /proc/self/task)
        "tasks" => {
            let tasks = std::fs::read_dir("/proc/self/task").expect("task").count();
            println!("tasks {}", tasks);
        }
        // `run PROGRAM ARGS...`: run another program (its output goes to this stdout), wait,
        // print its exit status
        "run" => {
            let status = std::process::Command::new(&args[2])
                .args(&args[3..])
                .status()
                .expect("run");
            println!("ran {} status {}", args[2], status.code().unwrap_or(-1));
        }
        other => {
            eprintln!("unknown mode {}", other);
            std::process::exit(2);
        }
    }
}
