//! Every augmentation op against torchvision's own output (`tests/fixtures/torchvision_ops.safetensors`,
//! made by `bench/torchvision_ops.py` with torchvision on PIL images, as solo-learn runs it): for the
//! same fixed parameters, each output pixel within one grey level of torchvision's.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use eigenssl::data::augment::{self, Image};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    op: String,
    side: usize,
    params: HashMap<String, f64>,
    key: String,
}

fn image(t: &Tensor) -> Image {
    let (h, w, _) = t.dims3().expect("H x W x 3");
    Image::new(h, w, t.flatten_all().and_then(|t| t.to_vec1::<u8>()).expect("u8 image"))
}

#[test]
fn every_op_matches_torchvision_within_one_grey_level() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torchvision_ops.safetensors");
    let bytes = std::fs::read(&path).expect("fixture (bench/torchvision_ops.py makes it)");
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).expect("header");
    let cases: Vec<Case> = serde_json::from_str(&meta.metadata().as_ref().expect("metadata")["cases"]).expect("cases");
    let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).expect("tensors");
    let mut ops_seen = std::collections::BTreeSet::new();
    let mut failures = Vec::new();
    for case in &cases {
        let input = image(&tensors[&format!("input/{}", case.side)]);
        let expected = image(&tensors[&case.key]);
        let p = |k: &str| case.params[k];
        let mut out = input.clone();
        match case.op.as_str() {
            "resized_crop" => {
                let at = |k: &str| p(k) as usize;
                out = augment::resized_crop(&input, at("top"), at("left"), at("height"), at("width"), case.side);
            }
            "brightness" => augment::adjust_brightness(&mut out, p("factor") as f32),
            "contrast" => augment::adjust_contrast(&mut out, p("factor") as f32),
            "saturation" => augment::adjust_saturation(&mut out, p("factor") as f32),
            "hue" => augment::adjust_hue(&mut out, p("factor")),
            "grayscale" => augment::to_grayscale(&mut out),
            "gaussian_blur" => augment::gaussian_blur(&mut out, p("sigma") as f32),
            "solarize" => augment::solarize(&mut out, p("threshold") as u8),
            "hflip" => augment::hflip(&mut out),
            other => panic!("fixture has an op this test does not know: {other}"),
        }
        ops_seen.insert(case.op.clone());
        assert_eq!((out.h, out.w), (expected.h, expected.w), "{}: size", case.key);
        let worst = out.px.iter().zip(&expected.px).map(|(&a, &b)| (a as i32 - b as i32).abs()).max().unwrap_or(0);
        let off = out.px.iter().zip(&expected.px).filter(|(a, b)| a != b).count();
        println!("{} {:?}: max difference {worst} grey level(s), {off} of {} values differ", case.key, case.params, out.px.len());
        if worst > 1 {
            failures.push(format!("{} {:?}: max difference {worst}", case.key, case.params));
        }
    }
    assert_eq!(ops_seen.len(), 9, "every op of the pipeline must be covered: {ops_seen:?}");
    assert!(failures.is_empty(), "ops differ from torchvision by more than one grey level:\n{}", failures.join("\n"));
}
