//! No spec can make eigenssl write outside `--out`: experiment and profile names are single folder
//! names, and two cell ids never share a record file (property tests over arbitrary names).

use std::path::{Component, Path};

use eigenssl::harness::store::Store;
use eigenssl::spec::Experiment;
use proptest::prelude::*;

/// fig1's spec with the experiment, one profile and its one cell renamed (the figure, which names cells,
/// left out).
fn spec_named(experiment: &str, profile: &str, cell: &str) -> String {
    let text = std::fs::read_to_string("experiments/fig1.yaml").unwrap();
    let mut v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    v["experiment"] = experiment.into();
    let map = v.as_mapping_mut().unwrap();
    map.remove("figure");
    let cells = v["cells"].as_sequence_mut().unwrap();
    cells.truncate(1);
    cells[0]["id"] = cell.into();
    let mut profiles = serde_yaml_ng::Mapping::new();
    let prof: serde_yaml_ng::Value = serde_yaml_ng::from_str("{ description: renamed, seeds: [0] }").unwrap();
    profiles.insert(profile.into(), prof);
    v["profiles"] = serde_yaml_ng::Value::Mapping(profiles);
    serde_yaml_ng::to_string(&v).unwrap()
}

/// Every path the store derives for the spec's runs, checked to lie under `out`.
fn assert_under(exp: &Experiment, out: &Path) {
    for (name, _) in &exp.profiles {
        let store = Store::new(out, &exp.name, name);
        for run in exp.runs(name, None).unwrap() {
            for path in [store.run_path(&run), store.dir.join("table.md"), store.weights_path(&run)] {
                let rel = path.strip_prefix(out).unwrap_or_else(|_| panic!("{} is not under {}", path.display(), out.display()));
                assert!(rel.components().all(|c| matches!(c, Component::Normal(_))), "{} leaves {}", path.display(), out.display());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn no_spec_writes_outside_out(experiment in "\\PC{0,12}|\\.\\.|/tmp/x|\\.\\./\\.\\./x", profile in "\\PC{0,12}|\\.\\./\\.\\./x", cell in "[a-z_./]{1,10}") {
        let out = Path::new("/results-root");
        if let Ok(exp) = Experiment::parse(&spec_named(&experiment, &profile, &cell), Path::new("spec.yaml")) {
            assert_under(&exp, out);
        }
    }

    #[test]
    fn names_of_the_rule_are_accepted(experiment in "[A-Za-z0-9_-]{1,12}", profile in "[A-Za-z0-9_-]{1,12}", cell in "[a-z0-9]{1,4}(/[a-z0-9]{1,4}){0,2}") {
        let exp = Experiment::parse(&spec_named(&experiment, &profile, &cell), Path::new("spec.yaml"));
        prop_assert!(exp.is_ok(), "{:?}", exp.err());
        assert_under(&exp.unwrap(), Path::new("/results-root"));
    }
}

#[test]
fn names_that_would_leave_out_are_refused_naming_the_field() {
    for (experiment, profile, field) in [("../x", "cpu", "experiment `../x`"), ("/tmp/x", "cpu", "experiment `/tmp/x`"), ("fig1", "../../x", "profiles: `../../x`")] {
        let err = Experiment::parse(&spec_named(experiment, profile, "a/b"), Path::new("spec.yaml")).unwrap_err().to_string();
        assert!(err.contains("spec.yaml") && err.contains(field) && err.contains("letters, digits"), "{err}");
    }
}

#[test]
fn two_cell_ids_that_would_share_a_record_file_are_refused_naming_both() {
    let text = std::fs::read_to_string("experiments/fig2.yaml").unwrap();
    let mut v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let cells = v["cells"].as_sequence_mut().unwrap();
    let first = cells[0]["id"].as_str().unwrap().to_string();
    assert!(first.contains('/'), "{first}");
    let mut twin = cells[0].clone();
    twin["id"] = first.replace('/', "__").into();
    cells.push(twin);
    let err = Experiment::parse(&serde_yaml_ng::to_string(&v).unwrap(), Path::new("fig2.yaml")).unwrap_err().to_string();
    assert!(err.contains(&format!("`{first}`")) && err.contains(&format!("`{}`", first.replace('/', "__"))) && err.contains("share record files"), "{err}");
}
