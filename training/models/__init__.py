"""Networks of the training stack: S3D backbone, keypoint stream, heads."""
