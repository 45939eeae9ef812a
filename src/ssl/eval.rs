//! Evaluations of a trained backbone on frozen, non-augmented features (eval mode): a weighted k-NN
//! classifier and an offline linear probe. The online readout (trained during pre-training) is in
//! `step.rs`; these two are what SSL libraries also report, so that numbers can be set side by side.
//!
//! k-NN follows solo-learn's `WeightedKNNClassifier` (cosine similarity of l2-normalised features, the
//! k most similar training images vote for their class with weight exp(similarity / T); defaults k = 20,
//! T = 0.07; lightly's CIFAR-10 benchmark uses k = 200, T = 0.1). The linear probe is our protocol (the
//! authors' code reports only the online readout): softmax regression on the features, SGD with momentum
//! 0.9, no weight decay, lr scaled by batch/256 and annealed by a cosine to 0, features standardised with
//! the training split's mean and std, the training order drawn from the run's seed.

use candle_core::{DType, Device, Tensor, D};
use rand::seq::SliceRandom;

use crate::rng::stream;

/// An offline evaluation of a backbone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Knn,
    Linear,
}

impl Protocol {
    /// The metric it reports.
    pub fn metric(self) -> &'static str {
        match self {
            Protocol::Knn => "knn_top1",
            Protocol::Linear => "linear_top1",
        }
    }
}

impl std::str::FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "knn" => Ok(Protocol::Knn),
            "linear" => Ok(Protocol::Linear),
            other => Err(format!("`{other}`: expected knn or linear")),
        }
    }
}

/// Top-1 (%) of the weighted k-NN classifier: `train`/`test` are n × d features with their labels.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use eigenssl::ssl::eval::knn_top1;
/// let train = Tensor::new(&[[1f32, 0.0], [0.9, 0.1], [0.0, 1.0]], &Device::Cpu).unwrap();
/// let test = Tensor::new(&[[1f32, 0.05], [0.1, 1.0]], &Device::Cpu).unwrap();
/// // k = 1: each test image takes its nearest training image's class.
/// assert_eq!(knn_top1(&train, &[0, 0, 1], &test, &[0, 1], 1, 0.07, 2).unwrap(), 100.0);
/// ```
pub fn knn_top1(train: &Tensor, train_labels: &[i64], test: &Tensor, test_labels: &[i64], k: usize, temperature: f64, classes: usize) -> candle_core::Result<f64> {
    let normalise = |x: &Tensor| -> candle_core::Result<Tensor> {
        let norm = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12, f64::INFINITY)?;
        x.broadcast_div(&norm)
    };
    let (train, test) = (normalise(&train.to_dtype(DType::F32)?)?, normalise(&test.to_dtype(DType::F32)?)?);
    let train_t = train.t()?.contiguous()?;
    let k = k.min(train_labels.len()).max(1);
    let mut correct = 0usize;
    // Chunks keep the similarity matrix small (solo-learn: at most 5·10⁶ entries).
    let chunk = (5_000_000 / train_labels.len().max(1)).clamp(1, 1024);
    for start in (0..test_labels.len()).step_by(chunk) {
        let len = chunk.min(test_labels.len() - start);
        let sims = test.narrow(0, start, len)?.matmul(&train_t)?.to_vec2::<f32>()?;
        for (row, &label) in sims.iter().zip(&test_labels[start..start + len]) {
            let mut order: Vec<usize> = (0..row.len()).collect();
            // Most similar first; equal similarities by index, so the vote is deterministic.
            order.select_nth_unstable_by(k - 1, |&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
            let mut votes = vec![0f64; classes];
            for &j in &order[..k] {
                let class = train_labels[j];
                if (0..classes as i64).contains(&class) {
                    votes[class as usize] += (row[j] as f64 / temperature).exp();
                }
            }
            // The first class with the most votes, as a stable sort would rank it.
            let predicted = votes.iter().enumerate().fold(0, |best, (c, &v)| if v > votes[best] { c } else { best });
            correct += usize::from(predicted as i64 == label);
        }
    }
    Ok(100.0 * correct as f64 / test_labels.len().max(1) as f64)
}

/// How the offline linear probe trains.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeConfig {
    pub epochs: usize,
    /// At batch 256 (scaled linearly with `batch`).
    pub lr: f64,
    pub batch: usize,
    pub seed: u64,
}

/// Top-1 (%) on `test` of a linear classifier trained on `train` (n × d features, labels in 0..classes;
/// unlabelled images, −1, are left out).
pub fn linear_probe_top1(train: &Tensor, train_labels: &[i64], test: &Tensor, test_labels: &[i64], classes: usize, cfg: &ProbeConfig) -> candle_core::Result<f64> {
    let device = train.device().clone();
    let labelled: Vec<usize> = (0..train_labels.len()).filter(|&i| train_labels[i] >= 0).collect();
    if labelled.is_empty() || cfg.epochs == 0 {
        candle_core::bail!("linear probe: no labelled training images or no epochs");
    }
    let idx = Tensor::from_vec(labelled.iter().map(|&i| i as u32).collect::<Vec<_>>(), labelled.len(), &device)?;
    let x = train.to_dtype(DType::F32)?.index_select(&idx, 0)?;
    let y: Vec<i64> = labelled.iter().map(|&i| train_labels[i]).collect();
    let (n, d) = x.dims2()?;
    let mean = x.mean_keepdim(0)?;
    let std = x.broadcast_sub(&mean)?.sqr()?.mean_keepdim(0)?.sqrt()?.clamp(1e-6, f64::INFINITY)?;
    let standardise = |f: &Tensor| f.to_dtype(DType::F32)?.broadcast_sub(&mean)?.broadcast_div(&std);
    let x = standardise(&x)?;
    let mut w = Tensor::zeros((d, classes), DType::F32, &device)?;
    let mut b = Tensor::zeros(classes, DType::F32, &device)?;
    let (mut vw, mut vb) = (w.zeros_like()?, b.zeros_like()?);
    let base_lr = cfg.lr * cfg.batch as f64 / 256.0;
    let batch = cfg.batch.min(n).max(1);
    let steps = n.div_ceil(batch) * cfg.epochs;
    let mut t = 0;
    for epoch in 0..cfg.epochs {
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.shuffle(&mut stream(cfg.seed, &format!("linear-probe/{epoch}")));
        for chunk in order.chunks(batch) {
            let lr = base_lr * 0.5 * (1.0 + (std::f64::consts::PI * t as f64 / steps as f64).cos());
            t += 1;
            let rows = Tensor::from_slice(chunk, chunk.len(), &device)?;
            let xb = x.index_select(&rows, 0)?;
            let yb: Vec<i64> = chunk.iter().map(|&i| y[i as usize]).collect();
            let onehot = one_hot(&yb, classes, &device)?;
            let p = candle_nn::ops::softmax_last_dim(&xb.matmul(&w)?.broadcast_add(&b)?)?;
            // Gradient of the mean cross-entropy.
            let g = ((p - onehot)? / chunk.len() as f64)?;
            let gw = xb.t()?.matmul(&g)?;
            let gb = g.sum(0)?;
            vw = ((vw * 0.9)? + gw)?;
            vb = ((vb * 0.9)? + gb)?;
            w = (w - (&vw * lr)?)?;
            b = (b - (&vb * lr)?)?;
        }
    }
    let logits = standardise(test)?.matmul(&w)?.broadcast_add(&b)?;
    let predicted = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
    let correct = predicted.iter().zip(test_labels).filter(|(&p, &l)| p as i64 == l).count();
    Ok(100.0 * correct as f64 / test_labels.len().max(1) as f64)
}

fn one_hot(labels: &[i64], classes: usize, device: &Device) -> candle_core::Result<Tensor> {
    let mut v = vec![0f32; labels.len() * classes];
    for (i, &l) in labels.iter().enumerate() {
        v[i * classes + l as usize] = 1.0;
    }
    Tensor::from_vec(v, (labels.len(), classes), device)
}
