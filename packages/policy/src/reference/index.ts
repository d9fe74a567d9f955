export { geluTanh, referenceForward, ropeInverseFrequencies } from './causal-lm.js';
