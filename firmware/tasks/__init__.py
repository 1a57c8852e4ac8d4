"""Benchmark tasks, each runnable as ``neurram run TASK``.

Every task module defines two functions, and the command line is built from :data:`TASKS`:

    add_run_arguments(parser)   its own options (data, weights, checkpoint); the command line adds
                                the common ones: --chip, --seed, --limit, --json, --workers, --quiet
    run_cli(args, chip) -> dict runs the task end to end on an opened chip, prints its report and
                                returns the JSON-able summary that ``--json`` writes
"""

#: task name -> (module under neurram.firmware.tasks, one-line help)
TASKS: dict[str, tuple[str, str]] = {
    "mnist": ("mnist", "the paper's 7-layer MNIST CNN (3-bit inputs and activations)"),
    "cifar10": ("cifar10", "ResNet-20 on CIFAR-10 on all 48 cores (4-bit inputs, 3-bit activations; docs/cifar10.md)"),
    "model": ("model", "your own network (an nn.save_network file, or an .onnx model) on MNIST, CIFAR-10 or your .npz"),
    "kws": ("kws", "the paper's keyword-spotting LSTM on Speech Commands (4-bit inputs, 6-bit MVM outputs)"),
    "rbm": ("rbm", "image recovery: a 794 x 120 RBM, Gibbs sampling with stochastic neurons (docs/rbm.md)"),
}
