//! Seeded parameter initialisation. candle's CPU device cannot be seeded (`Device::Cpu.set_seed` fails in
//! candle 0.11), so variables created through a plain `VarMap` are not repeatable. [`SeededVarMap`] is a
//! `VarBuilder` backend that draws every new variable on the host from a stream derived from
//! (seed, variable name) — independent of creation order — with the law an [`InitLaw`] names.
//!
//! The default, [`InitLaw::Torchvision`], is how the authors' networks start: their backbones come from
//! torchvision (convolutions Kaiming-normal with fan_out and ReLU gain, batch norm γ = 1, β = 0) and their
//! projector and readout are plain `nn.Linear` (weights and biases uniform ±1/√fan_in). The paper's VGG11
//! code is not public; we assume it was torchvision's `vgg11_bn`, whose init is the one above (its conv
//! biases start at 0 and sit before batch norm, which cancels them, so our VGG has none).
//! [`InitLaw::Candle`] keeps candle-nn's laws (Kaiming-normal with fan_in for every weight), which start
//! the projector with √6 ≈ 2.45× the authors' weight scale and change how the no-EMA cells train.

use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::init::NormalOrUniform;
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

/// How weights are initialised (biases and batch-norm parameters follow the layer's own constructor).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InitLaw {
    /// PyTorch's: conv weights N(0, 2/fan_out) (torchvision's VGG and ResNet), linear weights
    /// U(±1/√fan_in) (`nn.Linear`'s default).
    #[default]
    Torchvision,
    /// candle-nn's: every weight N(0, 2/fan_in).
    Candle,
}

impl InitLaw {
    /// The init of a weight of `shape` that candle-nn's constructor asked to initialise with `hint`.
    fn weight_init(self, hint: Init, shape: &Shape) -> Init {
        let Init::Kaiming { .. } = hint else { return hint };
        match (self, shape.dims()) {
            (InitLaw::Candle, _) => hint,
            (InitLaw::Torchvision, [cout, _, kh, kw]) => {
                Init::Randn { mean: 0.0, stdev: (2.0 / (cout * kh * kw).max(1) as f64).sqrt() }
            }
            (InitLaw::Torchvision, [_, fan_in]) => {
                let bound = 1.0 / (*fan_in.max(&1) as f64).sqrt();
                Init::Uniform { lo: -bound, up: bound }
            }
            (InitLaw::Torchvision, _) => hint,
        }
    }
}

/// A `VarMap` whose new variables come from a seeded host RNG.
#[derive(Clone)]
pub struct SeededVarMap {
    map: VarMap,
    seed: u64,
    law: InitLaw,
}

impl SeededVarMap {
    /// A map whose weights follow [`InitLaw::Torchvision`].
    pub fn new(seed: u64) -> Self {
        Self::with_law(seed, InitLaw::default())
    }

    pub fn with_law(seed: u64, law: InitLaw) -> Self {
        SeededVarMap { map: VarMap::new(), seed, law }
    }

    /// The underlying map (trainable variables, safetensors save/load).
    pub fn var_map(&self) -> &VarMap {
        &self.map
    }

    /// A `VarBuilder` creating variables in this map.
    ///
    /// ```
    /// use candle_core::{DType, Device};
    /// use eigenssl::ssl::init::SeededVarMap;
    /// let a = SeededVarMap::new(7);
    /// let b = SeededVarMap::new(7);
    /// let la = candle_nn::linear(4, 3, a.var_builder(DType::F32, &Device::Cpu).pp("fc")).unwrap();
    /// let lb = candle_nn::linear(4, 3, b.var_builder(DType::F32, &Device::Cpu).pp("fc")).unwrap();
    /// let (wa, wb) = (la.weight().to_vec2::<f32>().unwrap(), lb.weight().to_vec2::<f32>().unwrap());
    /// assert_eq!(wa, wb);
    /// ```
    pub fn var_builder(&self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), dtype, device.clone())
    }

    /// Every variable, sorted by name (a stable order for optimisers and checkpoints).
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let data = self.map.data().lock().expect("var map lock poisoned");
        let mut v: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// Host values for `init` of `shape`, from the stream (seed, name).
fn host_values(init: Init, shape: &Shape, seed: u64, name: &str) -> Vec<f64> {
    let mut rng = crate::rng::stream(seed, &format!("init/{name}"));
    let n = shape.elem_count();
    let uniform = |rng: &mut crate::rng::StreamRng, lo: f64, up: f64| (0..n).map(|_| rng.random_range(lo..up)).collect();
    let normal = |rng: &mut crate::rng::StreamRng, mean: f64, sd: f64| {
        (0..n).map(|_| mean + sd * rng.sample::<f64, _>(StandardNormal)).collect()
    };
    match init {
        Init::Const(c) => vec![c; n],
        Init::Uniform { lo, up } => uniform(&mut rng, lo, up),
        Init::Randn { mean, stdev } => normal(&mut rng, mean, stdev),
        Init::Kaiming { dist, fan, non_linearity } => {
            let fan = fan.for_shape(shape);
            let std = non_linearity.gain() / (fan.max(1) as f64).sqrt();
            match dist {
                NormalOrUniform::Uniform => {
                    let bound = 3f64.sqrt() * std;
                    uniform(&mut rng, -bound, bound)
                }
                NormalOrUniform::Normal => normal(&mut rng, 0.0, std),
            }
        }
    }
}

impl SimpleBackend for SeededVarMap {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let mut data = self.map.data().lock().map_err(|_| candle_core::Error::Msg("var map lock poisoned".into()))?;
        if let Some(v) = data.get(name) {
            let t = v.as_tensor();
            if t.shape() != &s {
                candle_core::bail!("shape mismatch for {name}: stored {:?}, asked {:?}", t.shape(), s);
            }
            return Ok(t.clone());
        }
        let vals = host_values(self.law.weight_init(h, &s), &s, self.seed, name);
        let t = Tensor::from_vec(vals, s, &Device::Cpu)?.to_dtype(dtype)?.to_device(dev)?;
        let var = Var::from_tensor(&t)?;
        let out = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(out)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> Result<Tensor> {
        let data = self.map.data().lock().map_err(|_| candle_core::Error::Msg("var map lock poisoned".into()))?;
        data.get(name)
            .map(|v| v.as_tensor().clone())
            .ok_or_else(|| candle_core::Error::CannotFindTensor { path: name.to_string() }.bt())
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.map.data().lock().map(|d| d.contains_key(name)).unwrap_or(false)
    }
}
