"""Everything that needs torch: data, synthetic anomalies, the network, training, calibration, export."""
