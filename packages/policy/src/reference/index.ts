export { geluTanh, referenceForward, referenceForwardRow, type ReferenceConfig, type ReferenceParameters } from './tinygpt.js';
