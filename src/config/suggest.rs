//! Near misses: "did you mean `orders:admin`?" after a name the configuration does not know.

/// How alike two long names must be (Jaro-Winkler, as clap suggests subcommands).
const ALIKE: f64 = 0.85;

/// `" (did you mean \"best\"?)"` for the known name most like `wanted`, or `""` when none is
/// close.
pub(super) fn did_you_mean<'a>(wanted: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    // Edits first (a swapped pair, `GTE`, is one), which short names need; then likeness.
    let best = known
        .into_iter()
        .filter(|k| *k != wanted)
        .map(|k| {
            (
                strsim::damerau_levenshtein(wanted, k),
                strsim::jaro_winkler(wanted, k),
                k,
            )
        })
        .filter(|(edits, alike, k)| *edits <= (wanted.len().min(k.len()) / 3).max(1) || *alike >= ALIKE)
        .min_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
    match best {
        Some((_, _, k)) => format!(" (did you mean {k:?}?)"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_the_closest_name_only_when_it_is_close() {
        assert_eq!(did_you_mean("GTE", ["GET", "PUT", "POST"]), " (did you mean \"GET\"?)");
        assert_eq!(
            did_you_mean("orders:amdin", ["orders:read", "orders:admin"]),
            " (did you mean \"orders:admin\"?)"
        );
        assert_eq!(did_you_mean("billing", ["orders", "payments"]), "");
    }
}
