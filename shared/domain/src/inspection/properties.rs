#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it got
//! Properties of the inspector on hostile input: arbitrary bytes and mutated valid headers
//! never panic, never keep more than the fixed bound, and get the same verdict however the
//! stream is cut into blocks (each byte is seen once, in order) and wherever the inspection
//! is suspended into JSON and taken up again (an import resumed after its worker died).

use proptest::prelude::*;

use super::*;

/// Valid samples of every format, the starting points of the mutations.
fn samples() -> Vec<(DiskFormat, Vec<u8>)> {
    vec![
        (
            DiskFormat::Qcow2,
            super::qcow2::tests::header(3, 1 << 30, 0),
        ),
        (
            DiskFormat::Vmdk,
            super::vmdk::tests::sparse_vmdk(
                &super::vmdk::tests::descriptor(
                    "monolithicSparse",
                    "RW 2048 SPARSE \"d.vmdk\"",
                    "",
                ),
                21,
            ),
        ),
        (DiskFormat::Vmdk, super::vmdk::tests::footed(|_| {})),
        (
            DiskFormat::Vhd,
            super::vhd::tests::dynamic_vhd(1 << 30, |_| {}),
        ),
        (DiskFormat::Vdi, super::vdi::tests::vdi(1, 1 << 30)),
        (DiskFormat::Iso, super::iso::tests::iso(64)),
        (DiskFormat::Raw, super::mbr::tests::mbr(&[(0, 0xEE)])),
    ]
}

/// The verdict on `data` fed in blocks of the given sizes (cycled), as a comparable value;
/// after block `suspend_at` the inspector goes through JSON, as a resume point keeps it.
fn streamed(
    declared: DiskFormat,
    data: &[u8],
    blocks: &[usize],
    suspend_at: Option<usize>,
) -> Result<Option<u64>, String> {
    let mut inspector = Inspector::new(declared);
    let mut at = 0;
    for (n, size) in blocks.iter().cycle().enumerate() {
        if at >= data.len() {
            break;
        }
        if suspend_at == Some(n) {
            let json = serde_json::to_string(&inspector).unwrap();
            let resumed: Inspector = serde_json::from_str(&json).unwrap();
            assert_eq!(resumed, inspector, "the inspection changed through JSON");
            assert_eq!(resumed.seen(), at as u64);
            inspector = resumed;
        }
        let end = data.len().min(at + size.max(&1));
        inspector
            .observe(&data[at..end])
            .map_err(|e| e.to_string())?;
        assert!(inspector.retained() <= HEAD_BYTES + TAIL_BYTES + REGION_BYTES);
        at = end;
    }
    inspector.finish().map_err(|e| e.to_string())
}

fn whole(declared: DiskFormat, data: &[u8]) -> Result<Option<u64>, String> {
    inspect_bytes(declared, data).map_err(|e| e.to_string())
}

fn any_format() -> impl Strategy<Value = DiskFormat> {
    proptest::sample::select(DiskFormat::ALL.to_vec())
}

/// Arbitrary bytes behind a real magic number, so the parsers behind it are reached.
fn magic_then_noise() -> impl Strategy<Value = Vec<u8>> {
    let magics: Vec<&'static [u8]> = vec![
        b"QFI\xfb",
        b"QED\0",
        b"vhdxfile",
        b"KDMV",
        b"COWD",
        b"conectix",
        b"# Disk DescriptorFile\n",
    ];
    (
        proptest::sample::select(magics),
        proptest::collection::vec(any::<u8>(), 0..8192),
    )
        .prop_map(|(magic, noise)| [magic.to_vec(), noise].concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_and_stream_alike(
        declared in any_format(),
        data in prop_oneof![proptest::collection::vec(any::<u8>(), 0..8192), magic_then_noise()],
        blocks in proptest::collection::vec(1usize..5000, 1..8),
        suspend_at in proptest::option::of(0usize..8),
    ) {
        prop_assert_eq!(streamed(declared, &data, &blocks, suspend_at), whole(declared, &data));
    }

    #[test]
    fn mutated_headers_never_panic_and_stream_alike(
        pick in 0usize..7,
        mutations in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
        cut in proptest::option::of(any::<prop::sample::Index>()),
        blocks in proptest::collection::vec(1usize..70_000, 1..6),
        declared in proptest::option::of(any_format()),
        suspend_at in proptest::option::of(0usize..8),
    ) {
        let (format, mut data) = samples().swap_remove(pick);
        // Most mutations land in the first sector, where the fields are.
        for (at, value) in mutations {
            let limit = if value % 2 == 0 { 512.min(data.len()) } else { data.len() };
            data[at.index(limit)] = value;
        }
        if let Some(cut) = cut {
            data.truncate(cut.index(data.len() + 1));
        }
        let declared = declared.unwrap_or(format);
        prop_assert_eq!(streamed(declared, &data, &blocks, suspend_at), whole(declared, &data));
    }
}

proptest! {
    // A VHDX sample is 3 MiB: fewer cases.
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn mutated_vhdx_metadata_never_panics_and_streams_alike(
        mutations in proptest::collection::vec((0usize..(64 * 1024 + 512), any::<u8>()), 1..24),
        blocks in proptest::collection::vec(1000usize..(1 << 20), 1..4),
        suspend_at in proptest::option::of(0usize..12),
    ) {
        let items = super::vhdx::tests::standard_items(1 << 30, 0);
        let mut data = super::vhdx::tests::vhdx(&items, |_| {});
        for (at, value) in mutations {
            // The metadata region is not checksummed: anything there must be survived.
            data[(1 << 20) + at] = value;
        }
        prop_assert_eq!(
            streamed(DiskFormat::Vhdx, &data, &blocks, suspend_at),
            whole(DiskFormat::Vhdx, &data)
        );
    }
}
