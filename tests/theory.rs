//! The theory engine against the eigenmode theory: agreement, discriminating power, outcomes.

use eigenssl::theory::predictor::{predictor, spectrum};
use eigenssl::theory::{maps, moments, simulate, Loss, Nonlinearity, Outcome, Predictor, Sampler, TheoryConfig};
use nalgebra::DMatrix;

const LOSSES: [Loss; 4] = [Loss::NoStopGrad, Loss::WrongSideStopGrad, Loss::Simsiam, Loss::Isoloss];

fn cfg(loss: Loss, sampler: Sampler, batch: usize, steps: usize) -> TheoryConfig {
    TheoryConfig {
        loss,
        nonlinearity: Nonlinearity::Linear,
        n_in: 15,
        n_out: 10,
        batch,
        sigma: 0.1,
        lr: 0.01,
        alpha: 1.0,
        predictor: Predictor::ClosedForm,
        sampler,
        steps,
        init_scale: 0.25,
        log_every: 1,
        eval_points: 0,
        eval_pool: 0,
        diverge_above: 1e6,
        collapse_below: 1e-8,
        converge_tol: 0.05,
    }
}

/// Max relative error between a run's logged spectrum and the map `step` applied from its first row,
/// over eigenvalues in the comparison range.
fn max_rel_err(h: &eigenssl::theory::TheoryHistory, step: impl Fn(f64) -> f64) -> f64 {
    let mut pred: Vec<f64> = h.eigenvalues[0].clone();
    let mut worst = 0.0f64;
    let mut t = 0;
    for (&s, row) in h.steps.iter().zip(&h.eigenvalues).skip(1) {
        while t < s {
            pred.iter_mut().for_each(|p| *p = step(*p));
            t += 1;
        }
        let mut sorted = pred.clone();
        sorted.sort_by(f64::total_cmp);
        for (&sim, &p) in row.iter().zip(&sorted) {
            let ok = |v: f64| (1e-3..=10.0).contains(&v);
            if ok(sim) && ok(p) {
                worst = worst.max((sim - p).abs() / p);
            }
        }
    }
    worst
}

#[test]
fn linear_simulation_follows_the_maps_within_two_percent() {
    for loss in LOSSES {
        for seed in 0..4 {
            let c = cfg(loss, Sampler::Moments, 50_000, 1500);
            let sim = simulate(&c, seed);
            let err = max_rel_err(&sim.history, |l| maps::step(loss, l, 1.0, 0.1, 0.01));
            assert!(err <= 0.02, "{loss:?} seed {seed}: max rel err {err}");
            // The engine compares at full precision; the history is stored to 5 significant digits.
            let engine = sim.metrics["theory_max_rel_err"];
            assert!(engine <= 0.02 && (engine - err).abs() < 2e-3, "engine metric {engine} vs {err}");
        }
    }
}

#[test]
fn explicit_samples_follow_the_maps_too() {
    for loss in LOSSES {
        let c = cfg(loss, Sampler::Samples, 50_000, 150);
        let sim = simulate(&c, 7);
        let err = max_rel_err(&sim.history, |l| maps::step(loss, l, 1.0, 0.1, 0.01));
        assert!(err <= 0.02, "{loss:?}: max rel err {err}");
    }
}

#[test]
fn the_bound_catches_a_wrong_sign_or_a_missing_sigma_term() {
    for loss in LOSSES {
        let sim = simulate(&cfg(loss, Sampler::Moments, 50_000, 1500), 0);
        // The gain with its sign flipped.
        let flipped = max_rel_err(&sim.history, |l| {
            let f = 1.0 + 0.01 * maps::gain(loss, l, 1.0, 0.1);
            l * f * f
        });
        assert!(flipped > 0.02, "{loss:?}: flipped sign still within bound ({flipped})");
    }
    // No stop-grad without its σ² term would stop at λ = 1 instead of collapsing.
    let sim = simulate(&cfg(Loss::NoStopGrad, Sampler::Moments, 50_000, 1500), 0);
    let no_sigma = max_rel_err(&sim.history, |l| maps::step(Loss::NoStopGrad, l, 1.0, 0.0, 0.01));
    assert!(no_sigma > 0.02, "missing σ² still within bound ({no_sigma})");
}

#[test]
fn paper_outcomes_hold_for_the_linear_network() {
    for seed in 0..4 {
        let run = |loss| simulate(&cfg(loss, Sampler::Moments, 50_000, 1500), seed);
        let nosg = run(Loss::NoStopGrad);
        assert!(matches!(nosg.outcome, Outcome::Collapsed | Outcome::Collapsing), "no-SG: {:?}", nosg.outcome);

        let ws = run(Loss::WrongSideStopGrad);
        assert_eq!(ws.outcome, Outcome::Diverged);
        // Modes that started below 1 + σ² shrank; the top one blew up.
        let first = &ws.history.eigenvalues[0];
        let last = ws.history.eigenvalues.last().unwrap();
        for (a, b) in first.iter().zip(last) {
            if *a < 1.0 {
                assert!(b < a, "wrong-side: mode {a} below 1 did not shrink ({b})");
            }
        }

        let ss = run(Loss::Simsiam);
        let iso = run(Loss::Isoloss);
        assert!(matches!(ss.outcome, Outcome::Converged | Outcome::Converging), "SimSiam: {:?}", ss.outcome);
        assert_eq!(iso.outcome, Outcome::Converged);
        assert!(
            iso.metrics["mode_step_spread"] < ss.metrics["mode_step_spread"],
            "seed {seed}: IsoLoss spread {} not below SimSiam's {}",
            iso.metrics["mode_step_spread"],
            ss.metrics["mode_step_spread"]
        );
    }
}

#[test]
fn moment_sampler_has_the_law_of_explicit_samples() {
    // The batch gradient at a fixed W: mean and spread over many draws must agree between samplers.
    use eigenssl::theory::Simulator;
    let draws = 300;
    let stats = |sampler| {
        let c = cfg(Loss::NoStopGrad, sampler, 400, 1);
        let mut vals = Vec::new();
        for seed in 0..draws {
            // W₀ of seed 0 for every draw, a fresh data stream each time.
            let mut s = Simulator::with_seeds(&c, 0, 1 + seed);
            let before = s.weights();
            let g = s.gram_spectrum();
            s.step(&g);
            vals.push((before[(0, 0)] - s.weights()[(0, 0)]) / c.lr);
        }
        let n = vals.len() as f64;
        let mean = vals.iter().sum::<f64>() / n;
        let sd = (vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        (mean, sd)
    };
    let (m1, s1) = stats(Sampler::Samples);
    let (m2, s2) = stats(Sampler::Moments);
    // Means agree within 4 standard errors; spreads within 20 %.
    let se = (s1 * s1 / draws as f64 + s2 * s2 / draws as f64).sqrt();
    assert!((m1 - m2).abs() < 4.0 * se, "means differ: {m1} vs {m2} (se {se})");
    assert!((s1 / s2 - 1.0).abs() < 0.2, "spreads differ: {s1} vs {s2}");
}

#[test]
fn moments_gradient_is_exact_for_the_identity_moments() {
    // With Sxx = See = I and Sxe = 0 (the expectation), the gradient is G W of the derivation.
    let w = DMatrix::from_fn(3, 4, |r, c| ((r * 4 + c) as f64 * 0.37).sin());
    let wp = predictor(&spectrum(&(&w * w.transpose())), 1.0);
    let s = moments::Moments { xx: DMatrix::identity(4, 4), xe: DMatrix::zeros(4, 4), ee: DMatrix::identity(4, 4) };
    let eye = DMatrix::<f64>::identity(3, 3);
    let sigma = 0.3;
    let expect = [
        (Loss::Simsiam, &wp * (&wp - &eye) * &w),
        (Loss::Isoloss, (&wp - &eye) * &w),
        (Loss::NoStopGrad, ((&wp - &eye) * (&wp - &eye) + &eye * (sigma * sigma)) * &w),
        (Loss::WrongSideStopGrad, -((&wp - &eye * (1.0 + sigma * sigma)) * &w)),
    ];
    for (loss, e) in expect {
        let g = moments::gradient(loss, &w, &wp, sigma, &s);
        assert!((g - e).norm() < 1e-12, "{loss:?}");
    }
}

#[test]
fn predictor_matches_a_direct_eigendecomposition() {
    let a = DMatrix::from_fn(5, 5, |r, c| ((r + 2 * c) as f64).cos());
    let sym = &a * a.transpose();
    let s = spectrum(&sym);
    assert!(s.values.windows(2).all(|w| w[0] <= w[1]), "ascending");
    let wp = predictor(&s, 0.5);
    // W_P² = C for α = 1/2 (C is positive semi-definite).
    assert!((&wp * &wp - &sym).norm() < 1e-9);
    assert!((predictor(&s, 1.0) - &sym).norm() < 1e-9);
}

#[test]
fn maps_have_the_papers_fixed_points() {
    let (a, s, lr) = (1.0, 0.1, 0.01);
    assert_eq!(maps::step(Loss::Simsiam, 1.0, a, s, lr), 1.0);
    assert_eq!(maps::step(Loss::Isoloss, 1.0, a, s, lr), 1.0);
    assert!((maps::step(Loss::WrongSideStopGrad, 1.0 + s * s, a, s, lr) - (1.0 + s * s)).abs() < 1e-15);
    assert!(maps::step(Loss::NoStopGrad, 1.0, a, s, lr) < 1.0);
    // SimSiam: small modes relax more slowly than IsoLoss's (the paper's claim).
    let rel = |loss| maps::step(loss, 0.05, a, s, lr) / 0.05;
    assert!(rel(Loss::Simsiam) < rel(Loss::Isoloss));
}

#[test]
fn relu_network_runs_and_its_noise_free_part_is_finite() {
    let mut c = cfg(Loss::Simsiam, Sampler::Samples, 2000, 50);
    c.nonlinearity = Nonlinearity::Relu;
    let sim = simulate(&c, 1);
    assert!(sim.history.eigenvalues.iter().flatten().all(|v| v.is_finite()));
    assert_eq!(sim.outcome_step, 50);
}

#[test]
fn same_seed_same_result() {
    let c = cfg(Loss::Simsiam, Sampler::Samples, 3000, 20);
    let a = simulate(&c, 3);
    let b = simulate(&c, 3);
    assert_eq!(a.history, b.history);
    assert_eq!(a.metrics, b.metrics);
    let d = simulate(&c, 4);
    assert_ne!(a.history, d.history);
}
