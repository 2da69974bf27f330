fn main() {
    let obj = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sensor"));
    let mut ebpf = aya::Ebpf::load(obj).unwrap();
    let p: &mut aya::programs::Xdp = ebpf.program_mut("sensor").unwrap().try_into().unwrap();
    match p.load() {
        Ok(()) => println!("loaded"),
        Err(e) => {
            println!("{e:?}");
        }
    }
}
