# syntax=docker/dockerfile:1.7
# Trained artefacts, versioned apart from the code: the retrieval index and ranker model
# (var/models/{retrieval,ranker}) and the Triton model repository generated from the ranker.
# Init containers copy what their pod needs (see deploy/k8s). Build from the repository root
# after training and export (docs/deploy.md):
#   docker build -f deploy/docker/artifacts.Dockerfile \
#     -t registry.example.com/acme/recsys-artifacts:0.1.0 .
ARG TRITON_REPOSITORY=var/triton/model_repository

# ---- collect: only the artefact folders, nothing else from the build context ---------------
FROM busybox:1.37.0-musl AS collect
ARG TRITON_REPOSITORY
COPY var/models/retrieval/ /artifacts/models/retrieval/
COPY var/models/ranker/ /artifacts/models/ranker/
COPY ${TRITON_REPOSITORY}/ /artifacts/triton/
# Readable by any uid: the init containers run as the pod's non-root user.
RUN chmod -R a+rX,go-w /artifacts

# ---- runtime: busybox for sh/cp in the init containers, and the files ----------------------
FROM busybox:1.37.0-musl AS runtime
COPY --from=collect /artifacts /artifacts
USER 10001:10001
CMD ["sh", "-c", "ls -R /artifacts"]
