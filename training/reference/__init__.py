"""Models trained with the reference code (TwoStream-SLT / SingleStream, FangyunWei/SLRT,
folder `TwoStreamNetwork/`): read their checkpoints and files safely, map their weights
onto our modules, and preprocess input as the reference does."""
