//! The node key file: created private, reloaded identical, refused when exposed or malformed.

use std::os::unix::fs::PermissionsExt;

use bitsage_agent::{KeyError, NodeKey};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn a_new_key_file_is_private_and_reloads_identically() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The parent directory does not exist yet: it is created, private too.
    let path = dir.path().join("data").join("node.key");
    let created = NodeKey::load_or_create(&path).expect("created");
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().expect("parent")), 0o700);
    assert_eq!(created.path(), Some(path.as_path()));

    let loaded = NodeKey::load_or_create(&path).expect("loaded");
    assert_eq!(loaded.public_key(), created.public_key());
    assert_eq!(
        loaded.signing_key().to_bytes(),
        created.signing_key().to_bytes()
    );
    assert_eq!(loaded.default_node_id(), created.default_node_id());
    assert!(loaded.default_node_id().as_str().starts_with("node-"));

    // `create` never overwrites an existing key.
    assert!(matches!(NodeKey::create(&path), Err(KeyError::Io { .. })));
    assert_eq!(
        NodeKey::load(&path).expect("still there").public_key(),
        created.public_key()
    );
}

#[test]
fn a_key_file_readable_by_others_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("node.key");
    NodeKey::create(&path).expect("created");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let err = NodeKey::load_or_create(&path).expect_err("0644 must be refused");
    assert!(
        matches!(err, KeyError::Permissions { mode: 0o644, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("readable by group or others"), "{text}");
    assert!(text.contains("chmod 600"), "{text}");

    // Group-readable only is refused too.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    assert!(matches!(
        NodeKey::load(&path),
        Err(KeyError::Permissions { .. })
    ));
    // Fixed by the operator: accepted again.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    NodeKey::load(&path).expect("0600 accepted");
}

#[test]
fn malformed_key_files_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (not_hex, long) = ("zz".repeat(32), "00".repeat(40));
    let cases: [(&str, &[u8]); 5] = [
        ("empty", b""),
        ("short", b"abcd\n"),
        ("not-hex", not_hex.as_bytes()),
        ("binary", &[0xff, 0xfe, 0x00, 0x01]),
        ("long", long.as_bytes()),
    ];
    for (name, content) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, content).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let err = NodeKey::load_or_create(&path).expect_err(name);
        assert!(matches!(err, KeyError::Malformed { .. }), "{name}: {err:?}");
        assert!(err.to_string().contains("malformed"), "{name}: {err}");
    }
    // A directory where the key should be is not a key either.
    let err = NodeKey::load(dir.path()).expect_err("directory");
    assert!(matches!(err, KeyError::Malformed { .. }), "{err:?}");
}
