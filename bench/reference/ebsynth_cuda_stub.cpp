// Link stub for a CPU-only build of SingleZombie/ebsynth (the EbSynth fork Rerender uses):
// the fork's own src/ebsynth_nocuda.cpp still declares ebsynthRunCuda without the error-map
// argument the fork added, so the CPU-only build fails to link. This defines the function with
// the fork's signature; it is never called, since ebsynthBackendAvailableCuda() returns 0.
void ebsynthRunCuda(int, int, int, int, void*, void*, int, int, void*, void*, float*, float*, float, int, int,
                    int, int*, int*, int*, int, void*, void*, void*) {}

int ebsynthBackendAvailableCuda() { return 0; }
