/// Glimpse: image captioning with transformers on the CPU.
public enum Glimpse {
    public static let version = "0.1.0"
}
