"""The smallest app: load an exported model with the torch-free runtime, classify one image, print the top-5.

    python tools/example_app.py exported/mobilenet_v2/mobilenet_v2.onnx cat.jpg

Needs only numpy, onnxruntime and Pillow (plus edgecnn's runtime module); torch is not imported.
"""

import sys

from edgecnn.runtime.predictor import Predictor

model_path, image_path = sys.argv[1], sys.argv[2]
predictor = Predictor(model_path)  # preprocessing and labels come from the model file's metadata
for label, probability in predictor.predict(image_path, top_k=5)[0]:
    print(f"{probability:7.2%}  {label}")
