"""Importing this module before torch lets idle OpenMP threads sleep instead of spinning.

infer.py decodes images in worker processes while the model runs, on the same cores. OpenMP
threads that spin while they wait for work steal time from the decoders (infer.py ran 20 %
slower on two cores). Training is the opposite case: its images are decoded once and kept in
memory, and waking sleeping threads before each of a training step's many small operations made
a ResNet-18 step at 64 px 30 % slower. So only infer.py imports this. OpenMP reads the setting
when torch loads it, and a policy the user has chosen is kept.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
