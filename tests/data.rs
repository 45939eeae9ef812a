//! Dataset loaders on fixtures written here (every format), and each augmentation op against hand values.

use std::io::Write;
use std::path::Path;

mod common;

use eigenssl::data::augment::*;
use eigenssl::data::{cifar10, find, stl10, DatasetKind};

/// A 32×32 image whose pixel (y, x) is (8y, 8x, 100 + class): asymmetric, so a transpose or a channel
/// swap shows.
fn pattern(class: u8) -> Vec<u8> {
    let mut px = Vec::new();
    for y in 0..32u8 {
        for x in 0..32u8 {
            px.extend_from_slice(&[y * 8, x * 8, 100 + class]);
        }
    }
    px
}

fn check_pattern(img: &[u8], class: u8) {
    for (y, x) in [(0usize, 0usize), (0, 31), (31, 0), (5, 17)] {
        let p = &img[(y * 32 + x) * 3..(y * 32 + x) * 3 + 3];
        assert_eq!(p, &[y as u8 * 8, x as u8 * 8, 100 + class], "pixel ({y}, {x})");
    }
}

#[test]
fn cifar10_binary_batches_keep_orientation_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&bin).unwrap();
    let record = |class: u8| {
        let px = pattern(class);
        let mut r = vec![class];
        for c in 0..3 {
            r.extend((0..1024).map(|i| px[i * 3 + c]));
        }
        r
    };
    for i in 1..=5 {
        std::fs::write(bin.join(format!("data_batch_{i}.bin")), [record(i as u8), record(9)].concat()).unwrap();
    }
    std::fs::write(bin.join("test_batch.bin"), record(3)).unwrap();
    let d = find(DatasetKind::Cifar10, dir.path()).unwrap();
    assert_eq!(d.train.len(), 10);
    assert_eq!(d.train.labels[..4], [1, 9, 2, 9]);
    check_pattern(d.train.image(0), 1);
    check_pattern(d.test.image(0), 3);

    // A truncated batch and a bad label are errors naming the file.
    std::fs::write(bin.join("data_batch_2.bin"), &record(1)[..100]).unwrap();
    let e = find(DatasetKind::Cifar10, dir.path()).unwrap_err().to_string();
    assert!(e.contains("data_batch_2.bin") && e.contains("not a whole number"), "{e}");
    let mut bad = record(1);
    bad[0] = 12;
    std::fs::write(bin.join("data_batch_2.bin"), bad).unwrap();
    let e = find(DatasetKind::Cifar10, dir.path()).unwrap_err().to_string();
    assert!(e.contains("label 12"), "{e}");
}

fn png(class: u8) -> Vec<u8> {
    let img = image::RgbImage::from_raw(32, 32, pattern(class)).unwrap();
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[test]
fn image_folder_and_its_tar_gz_load_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cifar10");
    for (split, class, name, label) in [("train", "cat", "0.png", 0u8), ("train", "dog", "0.png", 1), ("train", "cat", "1.png", 0), ("test", "dog", "0.png", 1)] {
        let d = root.join(split).join(class);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(name), png(label)).unwrap();
    }
    let a = cifar10::load(&root).unwrap();
    assert_eq!(a.train.labels, vec![0, 0, 1]);
    assert_eq!(a.test.labels, vec![1]);
    check_pattern(a.train.image(2), 1);

    // The same folder as a .tar.gz, with a top-level folder inside.
    let tgz = dir.path().join("cifar10-jpeg.tar.gz");
    let f = std::fs::File::create(&tgz).unwrap();
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(f, flate2::Compression::fast()));
    tar.append_dir_all("top", &root).unwrap();
    tar.into_inner().unwrap().finish().unwrap().flush().unwrap();
    let b = cifar10::load(&tgz).unwrap();
    assert_eq!(a.train, b.train);
    assert_eq!(a.test, b.test);

    // An undecodable image is an error naming it.
    std::fs::write(root.join("train/cat/1.png"), b"not an image").unwrap();
    let e = cifar10::load(&root).unwrap_err().to_string();
    assert!(e.contains("1.png") && e.contains("cannot decode"), "{e}");
}

#[test]
fn stl10_binary_is_column_major_per_channel() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("stl10_binary");
    std::fs::create_dir(&d).unwrap();
    // One 96×96 image: channel c at (row r, col k) = (r + 2k + 50c) mod 256, stored column-major.
    let mut img = Vec::new();
    for c in 0..3usize {
        for k in 0..96usize {
            for r in 0..96usize {
                img.push(((r + 2 * k + 50 * c) % 256) as u8);
            }
        }
    }
    std::fs::write(d.join("train_X.bin"), &img).unwrap();
    std::fs::write(d.join("train_y.bin"), [3u8]).unwrap();
    std::fs::write(d.join("unlabeled_X.bin"), [img.clone(), img.clone()].concat()).unwrap();
    std::fs::write(d.join("test_X.bin"), &img).unwrap();
    std::fs::write(d.join("test_y.bin"), [10u8]).unwrap();
    let ds = stl10::load(&d).unwrap();
    assert_eq!(ds.train.labels, vec![2, -1, -1]);
    assert_eq!(ds.test.labels, vec![9]);
    let px = ds.train.image(0);
    for (r, k) in [(0usize, 0usize), (0, 95), (95, 0), (10, 3)] {
        for c in 0..3 {
            assert_eq!(px[(r * 96 + k) * 3 + c] as usize, (r + 2 * k + 50 * c) % 256, "row {r} col {k} ch {c}");
        }
    }
    std::fs::write(d.join("test_y.bin"), [11u8]).unwrap();
    assert!(stl10::load(&d).unwrap_err().to_string().contains("label 11"));
}

#[test]
fn missing_data_says_where_it_looked_and_what_is_accepted() {
    common::offline_with_empty_hub_cache();
    let dir = tempfile::tempdir().unwrap();
    let e = find(DatasetKind::Stl10, dir.path()).unwrap_err().to_string();
    assert!(e.contains("no stl10 data found") && e.contains("stl10_binary") && e.contains("Accepted layouts") && e.contains("stl10-parquet") && e.contains("Hugging Face hub") && e.contains("HF_HUB_OFFLINE"), "{e}");
    let e = find(DatasetKind::Cifar10, Path::new("/nonexistent")).unwrap_err().to_string();
    assert!(e.contains("cifar-10-batches-bin"), "{e}");
}

fn img(px: &[[u8; 3]], w: usize) -> Image {
    Image::new(px.len() / w, w, px.iter().flatten().copied().collect())
}

#[test]
fn colour_ops_by_hand() {
    let base = img(&[[50, 100, 150], [200, 128, 30]], 2);
    // Brightness blends with black and truncates, as Pillow: 1.5 · (50, 100, 150, 200, 128, 30).
    let mut b = base.clone();
    adjust_brightness(&mut b, 1.5);
    assert_eq!(b.px, vec![75, 150, 225, 255, 192, 45]);
    // Grayscale is Pillow's fixed-point luma in every channel; saturation 0 is grayscale.
    let l0 = ((50 * 19595 + 100 * 38470 + 150 * 7471 + 0x8000) >> 16) as u8;
    let mut g = base.clone();
    to_grayscale(&mut g);
    assert_eq!(&g.px[..3], &[l0; 3]);
    let mut s = base.clone();
    adjust_saturation(&mut s, 0.0);
    assert_eq!(s.px, g.px);
    // Contrast 0 is the rounded mean luma everywhere.
    let mean = ((g.px[0] as f64 + g.px[3] as f64) / 2.0 + 0.5) as u8;
    let mut c = base.clone();
    adjust_contrast(&mut c, 0.0);
    assert_eq!(c.px, vec![mean; 6]);
    // Hue: pure red shifted by a third of a turn (85 of 256 steps) is pure green.
    let mut h = img(&[[255, 0, 0]], 1);
    adjust_hue(&mut h, 1.0 / 3.0);
    assert_eq!(h.px, vec![0, 255, 0]);
    // Solarize at 128 inverts 150, 200 and 128 only.
    let mut z = base.clone();
    solarize(&mut z, 128);
    assert_eq!(z.px, vec![50, 100, 105, 55, 127, 30]);
}

#[test]
fn geometry_ops_by_hand() {
    let base = img(&[[0; 3], [10; 3], [20; 3], [30; 3]], 2);
    let mut f = base.clone();
    hflip(&mut f);
    assert_eq!(f.px, img(&[[10; 3], [0; 3], [30; 3], [20; 3]], 2).px);
    // A full-image crop resized to the same size is the identity.
    assert_eq!(resized_crop(&base, 0, 0, 2, 2, 2).px, base.px);
    // A constant image stays constant through resampling and blur.
    let flat = Image::new(9, 9, vec![77; 243]);
    assert_eq!(resized_crop(&flat, 1, 2, 5, 7, 9).px, flat.px);
    let mut blurred = flat.clone();
    gaussian_blur(&mut blurred, 1.7);
    assert_eq!(blurred.px, flat.px);
    // A blurred delta spreads symmetrically and keeps its centre highest.
    let mut k = Image::new(9, 9, vec![0; 243]);
    k.px[(4 * 9 + 4) * 3] = 255;
    gaussian_blur(&mut k, 1.0);
    let at = |y: usize, x: usize| k.px[(y * 9 + x) * 3];
    assert!(at(4, 4) > at(4, 5) && at(4, 5) > 0, "{} {}", at(4, 4), at(4, 5));
    assert_eq!(at(4, 3), at(4, 5));
    assert_eq!(at(3, 4), at(5, 4));
}

#[test]
fn crop_boxes_respect_scale_and_ratio_and_batches_are_deterministic() {
    let mut rng = eigenssl::rng::stream(0, "t");
    for _ in 0..200 {
        let (t, l, h, w) = random_crop_box(32, 32, (0.08, 1.0), &mut rng);
        assert!(t + h <= 32 && l + w <= 32 && h > 0 && w > 0);
        let area = (h * w) as f64 / 1024.0;
        assert!(area >= 0.05 && area <= 1.0, "area {area}");
    }
    let d = eigenssl::data::synthetic();
    let views = Pipeline::Simclr.views(32);
    let a = views_batch(&d.train, &[3, 7], &views, 1, 0, d.mean, d.std);
    let b = views_batch(&d.train, &[7, 3], &views, 1, 0, d.mean, d.std);
    // Per-sample streams: the same sample gets the same views whatever its position in the batch.
    let n = 3 * 32 * 32;
    assert_eq!(a.0[0][..n], b.0[0][n..]);
    assert_ne!(a.0[0][..n], a.0[1][..n], "the two views differ");
    let c = views_batch(&d.train, &[3, 7], &views, 1, 1, d.mean, d.std);
    assert_ne!(a.0[0], c.0[0], "a new epoch draws new augmentations");
}

/// Writes a parquet file as `datasets` exports images: a struct column `image_col` { bytes } and an
/// int64 `label` column (optional: `None` labels are nulls; `with_label` false leaves the column out).
fn write_parquet(path: &Path, image_col: &str, images: &[Vec<u8>], labels: &[Option<i64>], with_label: bool) {
    use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use std::sync::Arc;
    let label = if with_label { "OPTIONAL INT64 label;" } else { "" };
    let schema = format!("message hf {{ REQUIRED GROUP {image_col} {{ REQUIRED BYTE_ARRAY bytes; }} {label} }}");
    let schema = Arc::new(parquet::schema::parser::parse_message_type(&schema).unwrap());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let props = Arc::new(WriterProperties::builder().set_compression(parquet::basic::Compression::SNAPPY).build());
    let mut w = SerializedFileWriter::new(std::fs::File::create(path).unwrap(), schema, props).unwrap();
    let mut rg = w.next_row_group().unwrap();
    let mut col = rg.next_column().unwrap().unwrap();
    let bytes: Vec<ByteArray> = images.iter().map(|b| ByteArray::from(b.clone())).collect();
    col.typed::<ByteArrayType>().write_batch(&bytes, None, None).unwrap();
    col.close().unwrap();
    if with_label {
        let mut col = rg.next_column().unwrap().unwrap();
        let values: Vec<i64> = labels.iter().flatten().copied().collect();
        let defs: Vec<i16> = labels.iter().map(|l| l.is_some() as i16).collect();
        col.typed::<Int64Type>().write_batch(&values, Some(&defs), None).unwrap();
        col.close().unwrap();
    }
    rg.close().unwrap();
    w.close().unwrap();
}

fn png_of(side: u32, px: Vec<u8>) -> Vec<u8> {
    let img = image::RgbImage::from_raw(side, side, px).unwrap();
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[test]
fn cifar10_parquet_as_hugging_face_writes_it_keeps_orientation_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cifar10-parquet/plain_text");
    write_parquet(&root.join("train-00000-of-00001.parquet"), "img", &[png(3), png(7), png(0)], &[Some(3), Some(7), Some(0)], true);
    write_parquet(&root.join("test-00000-of-00001.parquet"), "img", &[png(9)], &[Some(9)], true);
    let d = find(DatasetKind::Cifar10, dir.path()).unwrap();
    assert_eq!(d.train.labels, vec![3, 7, 0]);
    assert_eq!(d.test.labels, vec![9]);
    check_pattern(d.train.image(1), 7);
    check_pattern(d.test.image(0), 9);

    // The same files found in a Hugging Face cache (how hf-hub stores a download).
    let cache = tempfile::tempdir().unwrap();
    let snap = cache.path().join("datasets--uoft-cs--cifar10/snapshots/0123abc/plain_text");
    std::fs::create_dir_all(&snap).unwrap();
    for f in ["train-00000-of-00001.parquet", "test-00000-of-00001.parquet"] {
        std::fs::copy(root.join(f), snap.join(f)).unwrap();
    }
    let files = eigenssl::data::parquet::CIFAR10_HUB.cached_files_in(cache.path());
    assert_eq!(files.len(), 2);
    let h = cifar10::from_parquet(&files, cache.path()).unwrap();
    assert_eq!((h.train, h.test), (d.train, d.test));
}

#[test]
fn stl10_parquet_pretrains_on_train_and_unlabeled() {
    // 96×96, pixel (y, x) = (2y, 2x, 50 + class).
    let stl = |class: u8| {
        let px: Vec<u8> = (0..96u32).flat_map(|y| (0..96u32).flat_map(move |x| [2 * y as u8, 2 * x as u8, 50 + class])).collect();
        png_of(96, px)
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("stl10-parquet/data");
    write_parquet(&root.join("train-00000-of-00001.parquet"), "image", &[stl(1), stl(2)], &[Some(1), Some(2)], true);
    write_parquet(&root.join("unlabeled-00000-of-00001.parquet"), "image", &[stl(0)], &[None], true);
    write_parquet(&root.join("test-00000-of-00001.parquet"), "image", &[stl(5)], &[Some(5)], true);
    let d = find(DatasetKind::Stl10, dir.path()).unwrap();
    assert_eq!(d.train.labels, vec![1, 2, -1], "train, then unlabeled (−1)");
    assert_eq!((d.train.h, d.train.w), (96, 96));
    let img = d.train.image(1);
    for (y, x) in [(0usize, 95usize), (95, 0), (10, 40)] {
        assert_eq!(&img[(y * 96 + x) * 3..(y * 96 + x) * 3 + 3], &[2 * y as u8, 2 * x as u8, 52], "pixel ({y}, {x})");
    }
}

#[test]
fn malformed_parquet_files_are_errors_naming_file_and_place() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cifar10-parquet");
    let test = root.join("test.parquet");
    write_parquet(&test, "img", &[png(1)], &[Some(1)], true);

    // A missing column.
    let train = root.join("train.parquet");
    write_parquet(&train, "img", &[png(1)], &[Some(1)], false);
    let e = find(DatasetKind::Cifar10, dir.path()).unwrap_err().to_string();
    assert!(e.contains("train.parquet") && e.contains("no `label` column") && e.contains("columns: img"), "{e}");

    // An undecodable image, named by row.
    write_parquet(&train, "img", &[png(1), b"not a png".to_vec()], &[Some(1), Some(2)], true);
    let e = find(DatasetKind::Cifar10, dir.path()).unwrap_err().to_string();
    assert!(e.contains("train.parquet") && e.contains("row 1") && e.contains("cannot decode"), "{e}");

    // A label out of range.
    write_parquet(&train, "img", &[png(1)], &[Some(12)], true);
    let e = find(DatasetKind::Cifar10, dir.path()).unwrap_err().to_string();
    assert!(e.contains("label 12"), "{e}");

    // A truncated file.
    write_parquet(&train, "img", &[png(1), png(2)], &[Some(1), Some(2)], true);
    let bytes = std::fs::read(&train).unwrap();
    std::fs::write(&train, &bytes[..bytes.len() - 20]).unwrap();
    let e = find(DatasetKind::Cifar10, dir.path()).unwrap_err().to_string();
    assert!(e.contains("train.parquet") && e.contains("not a readable parquet file"), "{e}");
}

#[test]
fn the_data_command_lists_what_is_found_and_what_is_missing_without_the_network() {
    // CIFAR-10 in a Hugging Face cache (as hf-hub stores a download), STL-10 nowhere.
    let home = tempfile::tempdir().unwrap();
    let snap = home.path().join("hub/datasets--uoft-cs--cifar10/snapshots/0123abc/plain_text");
    write_parquet(&snap.join("train-00000-of-00001.parquet"), "img", &[png(3), png(7)], &[Some(3), Some(7)], true);
    write_parquet(&snap.join("test-00000-of-00001.parquet"), "img", &[png(9)], &[Some(9)], true);
    let empty = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_eigenssl"))
        .env("HF_HOME", home.path())
        .env("HF_HUB_OFFLINE", "1")
        .args(["data", "--data-dir"])
        .arg(empty.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    // The fingerprint hashes the decoded images: the same images in a local parquet folder agree.
    let local = tempfile::tempdir().unwrap();
    for f in ["train-00000-of-00001.parquet", "test-00000-of-00001.parquet"] {
        let to = local.path().join("cifar10-parquet/plain_text");
        std::fs::create_dir_all(&to).unwrap();
        std::fs::copy(snap.join(f), to.join(f)).unwrap();
    }
    let sha = find(DatasetKind::Cifar10, local.path()).unwrap().fingerprint().sha256;
    let cifar = stdout.lines().find(|l| l.contains("CIFAR-10")).unwrap();
    assert!(cifar.contains("yes") && cifar.contains("parquet") && cifar.contains("2 / 1") && cifar.contains(&sha[..16]), "{stdout}");
    let stl = stdout.lines().find(|l| l.contains("STL-10")).unwrap();
    assert!(stl.contains("missing"), "{stdout}");
    assert!(stdout.contains("no stl10 data found") && stdout.contains("Accepted layouts") && stdout.contains("eigenssl data --download"), "{stdout}");
    // --download takes what the cache has and asks the hub for the rest (refused offline, with the reason).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_eigenssl"))
        .env("HF_HOME", home.path())
        .env("HF_HUB_OFFLINE", "1")
        .args(["data", "--download", "--data-dir"])
        .arg(empty.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.lines().any(|l| l.contains("CIFAR-10") && l.contains("yes")), "{stdout}");
    assert!(stdout.contains("HF_HUB_OFFLINE is set"), "{stdout}");
}
