//! The three-way merge: for one path, what the laptop holds, what the VM holds, and what both
//! last agreed on decide what moves where.
//!
//! - Equal on both sides: they agree (whatever the base said).
//! - Changed on one side only: that side's version goes to the other.
//! - Changed on both, differently (a conflict): nothing is lost. A deletion loses to an edit
//!   (the edited version comes back). Otherwise the laptop's version keeps the path and the VM's
//!   is kept beside it under a conflict name on both sides: the laptop is where the user edits,
//!   and an editor holding the file keeps showing what it holds; the container's write (usually
//!   generated) is one click away, under a name that says where it came from.
//! - A folder on the VM against a file or link on the laptop cannot be kept side by side without
//!   moving a whole folder; it is reported and both sides are left as they are until the user
//!   renames one.

use crate::entry::{Entry, Kind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Both sides hold the same: record it as agreed.
    Agree,
    /// The laptop's version goes to the VM (a removal if the laptop has none).
    ToVm,
    /// The VM's version comes to the laptop (a removal if the VM has none).
    ToLaptop,
    /// Both changed: the laptop keeps the path, the VM's version is kept under a conflict name.
    Conflict,
    /// Both changed in a way that cannot be kept side by side (a folder against a file).
    Stuck,
}

/// Decides one path.
pub fn decide(base: Option<&Kind>, laptop: Option<&Entry>, vm: Option<&Entry>) -> Decision {
    let l = laptop.map(|e| &e.kind);
    let v = vm.map(|e| &e.kind);
    if l == v {
        return Decision::Agree;
    }
    if l == base {
        return Decision::ToLaptop;
    }
    if v == base {
        return Decision::ToVm;
    }
    match (l, v) {
        (None, Some(_)) => Decision::ToLaptop,
        (Some(_), None) => Decision::ToVm,
        (Some(lk), Some(Kind::Dir)) if *lk != Kind::Dir => Decision::Stuck,
        _ => Decision::Conflict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(d: u8) -> Entry {
        Entry {
            kind: Kind::File {
                digest: [d; 32],
                exec: false,
            },
            size: 1,
            mtime: 0,
        }
    }
    fn dir() -> Entry {
        Entry {
            kind: Kind::Dir,
            size: 0,
            mtime: 0,
        }
    }

    #[test]
    fn the_table() {
        use Decision::*;
        let (a, b, c, d) = (file(1), file(2), file(3), dir());
        let k = |e: &Entry| e.kind.clone();
        type Case<'a> = (Option<Kind>, Option<&'a Entry>, Option<&'a Entry>, Decision, &'a str);
        let cases: Vec<Case> = vec![
            (None, None, None, Agree, "nothing anywhere"),
            (None, Some(&a), Some(&a), Agree, "both made the same"),
            (Some(k(&a)), Some(&a), Some(&a), Agree, "unchanged"),
            (None, Some(&a), None, ToVm, "new on the laptop"),
            (None, None, Some(&a), ToLaptop, "new on the VM"),
            (Some(k(&a)), Some(&b), Some(&a), ToVm, "edited on the laptop"),
            (Some(k(&a)), Some(&a), Some(&b), ToLaptop, "edited on the VM"),
            (Some(k(&a)), None, Some(&a), ToVm, "deleted on the laptop"),
            (Some(k(&a)), Some(&a), None, ToLaptop, "deleted on the VM"),
            (Some(k(&a)), Some(&b), Some(&c), Conflict, "edited on both"),
            (None, Some(&b), Some(&c), Conflict, "made on both, differently"),
            (
                Some(k(&a)),
                None,
                Some(&b),
                ToLaptop,
                "deleted here, edited there: the edit wins",
            ),
            (
                Some(k(&a)),
                Some(&b),
                None,
                ToVm,
                "edited here, deleted there: the edit wins",
            ),
            (None, None, None, Agree, "deleted on both"),
            (Some(k(&a)), Some(&b), Some(&d), Stuck, "a file here, a folder there"),
            (
                Some(k(&a)),
                Some(&d),
                Some(&b),
                Conflict,
                "a folder here, a file there: the file is kept beside",
            ),
        ];
        for (base, l, v, want, what) in cases {
            assert_eq!(decide(base.as_ref(), l, v), want, "{what}");
        }
    }
}
