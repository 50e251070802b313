"""The Geti SDK's asynchronous-inference notebook, as a runnable script on distinfer.

Runs offline on the bundled PP-OCR detection model and generated document
pages: asynchronous inference with a callback that writes overlay images, a
benchmark, the switch back to synchronous mode, the same benchmark, and
ordered video processing with AsyncVideoProcessor.

    python examples/async_inference.py [--images 40] [--out out/example]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import cv2
import numpy as np

from distinfer import AsyncVideoProcessor, Deployment, Prediction, draw_prediction
from distinfer._demo import write_pages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--out", type=Path, default=Path("out/example"))
    parser.add_argument("--model", default="ppocr-det", help="bundled name or model path")
    args = parser.parse_args()
    output_folder = args.out / "overlays"
    output_folder.mkdir(parents=True, exist_ok=True)

    # Step 1: a deployment (the Geti SDK gets one from a server; ours is bundled).
    deployment = Deployment.from_model(args.model)

    # Step 2: one infer request per core and the throughput hint. Unlike the Geti
    # SDK, max_async_infer_requests=None already means "one per core".
    num_cores = os.cpu_count()
    print(f"Detected {num_cores} cpu cores.")
    deployment.load_inference_models(
        device="CPU",
        max_async_infer_requests=num_cores,
        openvino_configuration={"PERFORMANCE_HINT": "THROUGHPUT"},
    )

    def handle_results(image: np.ndarray, result: Prediction, runtime_data: int) -> None:
        """Called for every finished request, on distinfer's callback thread."""
        filepath = output_folder / f"result_{runtime_data}.jpg"
        cv2.imwrite(str(filepath), cv2.cvtColor(draw_prediction(image, result), cv2.COLOR_RGB2BGR))
        print(f"Image {runtime_data} contains {len(result.annotations)} objects")

    deployment.set_asynchronous_callback(handle_results)

    # Step 3: the asynchronous benchmark on generated pages.
    pages = [path for path, _ in write_pages(args.out / "pages", args.images)]
    images = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in pages]
    t_start_async = time.perf_counter()
    for img_index, img_rgb in enumerate(images):
        deployment.infer_async(img_rgb, img_index)
    deployment.await_all()
    t_elapsed_async = time.perf_counter() - t_start_async
    print(f"Asynchronous mode: {len(images) / t_elapsed_async:.1f} fps")

    # Step 4: back to synchronous mode.
    deployment.asynchronous_mode = False

    # Step 5: the same benchmark, synchronously.
    t_start_sync = time.perf_counter()
    for img_index, img_rgb in enumerate(images):
        result = deployment.infer(img_rgb)
        handle_results(img_rgb, result, img_index)
    t_elapsed_sync = time.perf_counter() - t_start_sync
    print(f"Synchronous mode: {len(images) / t_elapsed_sync:.1f} fps")
    print(f"Asynchronous inference is {t_elapsed_sync / t_elapsed_async:.1f}x faster")

    # Special topic: frames in order. Plain async mode finishes out of order...
    indices_async: list[int] = []
    deployment.set_asynchronous_callback(lambda image, pred, data: data[1].append(data[0]))
    for img_index, img_rgb in enumerate(images):
        deployment.infer_async(img_rgb, (img_index, indices_async))
    deployment.await_all()
    print(f"Async order sorted? {indices_async == sorted(indices_async)}")

    # ...AsyncVideoProcessor hands frames to the processing function in order.
    indices_vp: list[int] = []
    with AsyncVideoProcessor(
        deployment, lambda image, pred, data: data[1].append(data[0])
    ) as video_processor:
        t_start_vp = time.perf_counter()
        for img_index, img_rgb in enumerate(images):
            video_processor.process(img_rgb, (img_index, indices_vp))
        video_processor.await_all()
        t_elapsed_vp = time.perf_counter() - t_start_vp
    print(f"AsyncVideoProcessor: {len(images) / t_elapsed_vp:.1f} fps")
    print(f"Video order sorted? {indices_vp == sorted(indices_vp)}")
    assert indices_vp == list(range(len(images)))
    deployment.close()


if __name__ == "__main__":
    main()
