# syntax=docker/dockerfile:1.7
# Trained artefacts, versioned apart from the code: the retrieval index, the ranker model and
# the learned ranking model (var/models/{retrieval,ranker,ltr}, as the local stack trains them) and the GPU variant of the
# ranker's Triton model repository. Init containers copy what their pod needs (deploy/k8s).
# Build from the repository root after training and exporting (docs/deploy.md):
#   docker build -f deploy/docker/artifacts.Dockerfile \
#     -t registry.example.com/acme/recsys-artifacts:0.1.0 .

# ---- collect: the artefact folders, and the Triton repository of the LATEST ranker ---------
FROM busybox:1.37.0-musl AS collect
COPY var/models/retrieval/ /artifacts/models/retrieval/
COPY var/models/ranker/ /artifacts/models/ranker/
COPY var/models/ltr/ /artifacts/models/ltr/
# The ranker writes its repositories into the artefact (<version>/triton/{cpu,gpu}); Triton on
# a GPU node serves the gpu variant (onnxruntime_onnx, KIND_GPU). The ranker pods call Triton
# or run the weights themselves, so they need neither copy.
RUN set -eu; \
    version="$(cat /artifacts/models/ranker/LATEST)"; \
    gpu="/artifacts/models/ranker/${version}/triton/gpu"; \
    ls "${gpu}"/*/config.pbtxt "${gpu}"/*/1/model.onnx; \
    mkdir -p /artifacts/triton; \
    cp -R "${gpu}/." /artifacts/triton/; \
    rm -rf /artifacts/models/ranker/*/triton; \
    chmod -R a+rX,go-w /artifacts

# ---- runtime: busybox for sh/cp in the init containers, and the files ----------------------
FROM busybox:1.37.0-musl AS runtime
COPY --from=collect /artifacts /artifacts
USER 10001:10001
CMD ["sh", "-c", "ls -R /artifacts"]
