use crate::common::Mounted;

#[test]
fn write_remount_read_and_fsck() {
    require_fuse!();
    let mut m = Mounted::new(&[]);
    let data: Vec<u8> = (0..300_000u32)
        .flat_map(|i| (i % 251).to_le_bytes())
        .collect();
    std::fs::write(m.path("f"), &data).unwrap();
    m.remount();
    assert_eq!(std::fs::read(m.path("f")).unwrap(), data);
    m.unmount();
    let (ok, report) = m.fsck();
    assert!(ok, "{report}");
}
