//! Times the format inspector over files, as an upload streams them (1 MiB blocks), and
//! prints each verdict, virtual size, the bytes the inspector held and the time per run.
//! `bench/inspection.sh` runs it over images of growing virtual size.
//!
//!     cargo run --release -p cloud-images-domain --example inspect -- qcow2:disk.qcow2 ...

use std::io::Read;
use std::time::Instant;

use cloud_images_domain::image::DiskFormat;
use cloud_images_domain::inspection::Inspector;

const BLOCK: usize = 1024 * 1024;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "{:<34} {:>16} {:>12} {:>12} {:>14} verdict",
        "format:file", "virtual size", "file bytes", "held bytes", "µs per run"
    );
    for arg in std::env::args().skip(1) {
        let (format, path) = arg.split_once(':').ok_or("arguments are <format>:<file>")?;
        let declared: DiskFormat = format.parse()?;
        let bytes = std::fs::metadata(path)?.len();
        let runs = (256 * BLOCK as u64 / bytes.max(1)).clamp(1, 1000);
        let started = Instant::now();
        let mut last = None;
        for _ in 0..runs {
            last = Some(inspect(declared, path)?);
        }
        let per_run = started.elapsed().as_micros() / u128::from(runs);
        let (verdict, held) = last.ok_or("no run")?;
        let (size, verdict) = match verdict {
            Ok(size) => (
                size.map_or("-".into(), |s| s.to_string()),
                "accepted".to_owned(),
            ),
            Err(e) => ("-".into(), format!("refused: {e}")),
        };
        println!("{arg:<34} {size:>16} {bytes:>12} {held:>12} {per_run:>14} {verdict}");
    }
    Ok(())
}

type Verdict = Result<Option<u64>, cloud_images_domain::DomainError>;

fn inspect(declared: DiskFormat, path: &str) -> std::io::Result<(Verdict, usize)> {
    let mut file = std::fs::File::open(path)?;
    let mut inspector = Inspector::new(declared);
    let mut block = vec![0u8; BLOCK];
    let mut held = 0;
    loop {
        let read = file.read(&mut block)?;
        if read == 0 {
            break;
        }
        if let Err(e) = inspector.observe(&block[..read]) {
            return Ok((Err(e.into()), inspector.retained()));
        }
        held = held.max(inspector.retained());
    }
    Ok((inspector.finish().map_err(Into::into), held))
}
