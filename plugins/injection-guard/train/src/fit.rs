//! Logistic regression on hashed features, fitted with AdaGrad in a fixed
//! order from a fixed seed, in f64: the same data gives the same weights,
//! bit for bit, on any machine.

use injection_guard::features::BITS;

pub struct Example {
    pub ids: Vec<u32>,
    pub positive: bool,
    pub weight: f64,
}

pub struct Params {
    pub epochs: usize,
    pub rate: f64,
    pub l2: f64,
    pub seed: u64,
}

pub struct Fitted {
    pub weights: Vec<f32>,
    pub bias: f32,
}

pub fn fit(examples: &[Example], params: &Params) -> Fitted {
    let n = 1usize << BITS;
    let mut w = vec![0f64; n];
    let mut g2 = vec![1e-8f64; n];
    let (mut bias, mut bias_g2) = (0f64, 1e-8f64);
    let mut order: Vec<usize> = (0..examples.len()).collect();
    let mut rng = params.seed.max(1);
    for _ in 0..params.epochs {
        shuffle(&mut order, &mut rng);
        for &i in &order {
            let ex = &examples[i];
            if ex.ids.is_empty() {
                continue;
            }
            let x = 1.0 / (ex.ids.len() as f64).sqrt();
            let z = bias + ex.ids.iter().map(|&id| w[id as usize]).sum::<f64>() * x;
            let p = 1.0 / (1.0 + (-z).exp());
            let err = (p - if ex.positive { 1.0 } else { 0.0 }) * ex.weight;
            for &id in &ex.ids {
                let id = id as usize;
                let g = err * x + params.l2 * w[id];
                g2[id] += g * g;
                w[id] -= params.rate * g / g2[id].sqrt();
            }
            bias_g2 += err * err;
            bias -= params.rate * err / bias_g2.sqrt();
        }
    }
    Fitted {
        weights: w.iter().map(|&v| v as f32).collect(),
        bias: bias as f32,
    }
}

/// Fisher-Yates with xorshift64: no dependency whose stream could change.
fn shuffle(order: &mut [usize], state: &mut u64) {
    for i in (1..order.len()).rev() {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        order.swap(i, (*state % (i as u64 + 1)) as usize);
    }
}
